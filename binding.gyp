{
  "targets": [
    {
      "target_name": "blufio_objseal",
      "sources": ["native/objseal.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
