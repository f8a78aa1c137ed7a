{
  "targets": [
    {
      "target_name": "blufio_objseal",
      "sources": ["native/objseal.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"],
      "conditions": [
        ["OS=='linux'", { "ldflags": ["-Wl,-z,now"] }],
        ["OS=='mac'", { "xcode_settings": { "OTHER_LDFLAGS": ["-Wl,-bind_at_load"] } }]
      ]
    }
  ]
}
