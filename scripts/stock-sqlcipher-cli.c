/*
 * A minimal command-line front end for a stock SQLCipher amalgamation, for interop tests only.
 * The npm package we take SQLCipher's sources from ships sqlite3.c but not SQLite's shell.c.
 *
 *   stock-sqlcipher DBFILE [SQL]
 *
 * Runs SQL (the second argument, or else all of standard input) against DBFILE, statement by
 * statement, exactly as given: nothing is set on the connection first, so `PRAGMA key = '...'`
 * in the SQL is the only thing that decides how the file is read. Pass a passphrase on
 * standard input rather than in argv, where `ps` shows it.
 *
 * Output, one line per result row, stable on purpose:
 *   - the row's columns joined by '|';
 *   - NULL as the empty string, integers in decimal, reals as %.17g, text as its bytes,
 *     blobs as X'hex' (lower case), so nothing binary reaches stdout.
 * Use quote() in the SQL where NULL and '' must be told apart.
 *
 * On an error: "Error: <sqlite3_errmsg>" on stderr and exit status 1 (the statements before
 * it have run). Exit status 2: bad usage or out of memory.
 */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"

static char *read_all(FILE *f) {
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap);
  if (!buf) return NULL;
  for (;;) {
    if (cap - len < 4096) {
      char *grown = realloc(buf, cap *= 2);
      if (!grown) { free(buf); return NULL; }
      buf = grown;
    }
    size_t n = fread(buf + len, 1, cap - len - 1, f);
    len += n;
    if (n == 0) break;
  }
  if (ferror(f)) { free(buf); return NULL; }
  buf[len] = '\0';
  return buf;
}

static void print_value(sqlite3_stmt *st, int i) {
  switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL:
      break;
    case SQLITE_INTEGER:
      printf("%lld", (long long)sqlite3_column_int64(st, i));
      break;
    case SQLITE_FLOAT:
      printf("%.17g", sqlite3_column_double(st, i));
      break;
    case SQLITE_BLOB: {
      const unsigned char *b = sqlite3_column_blob(st, i);
      int n = sqlite3_column_bytes(st, i);
      fputs("X'", stdout);
      for (int k = 0; k < n; k++) printf("%02x", b[k]);
      fputc('\'', stdout);
      break;
    }
    default: {
      const unsigned char *t = sqlite3_column_text(st, i);
      fwrite(t, 1, (size_t)sqlite3_column_bytes(st, i), stdout);
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s DBFILE [SQL]   (SQL from standard input when not given)\n", argv[0]);
    return 2;
  }
  char *sql = argc == 3 ? strdup(argv[2]) : read_all(stdin);
  if (!sql) { fputs("Error: out of memory or unreadable input\n", stderr); return 2; }

  sqlite3 *db = NULL;
  if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
    fprintf(stderr, "Error: %s\n", db ? sqlite3_errmsg(db) : "out of memory");
    sqlite3_close(db);
    free(sql);
    return 1;
  }

  int status = 0;
  const char *next = sql;
  while (*next) {
    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    if (sqlite3_prepare_v2(db, next, -1, &st, &tail) != SQLITE_OK) {
      fprintf(stderr, "Error: %s\n", sqlite3_errmsg(db));
      status = 1;
      break;
    }
    next = tail;
    if (!st) continue; /* whitespace or a comment */
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
      int n = sqlite3_column_count(st);
      for (int i = 0; i < n; i++) {
        if (i) fputc('|', stdout);
        print_value(st, i);
      }
      fputc('\n', stdout);
    }
    if (rc != SQLITE_DONE) {
      fprintf(stderr, "Error: %s\n", sqlite3_errmsg(db));
      sqlite3_finalize(st);
      status = 1;
      break;
    }
    sqlite3_finalize(st);
  }

  /* Wipe the SQL (it may hold the passphrase) before letting go of it; volatile so that the
     compiler cannot drop the stores as dead. */
  for (volatile char *p = sql; *p; p++) *p = 0;
  free(sql);
  if (sqlite3_close(db) != SQLITE_OK) {
    fprintf(stderr, "Error: close: %s\n", sqlite3_errmsg(db));
    status = 1;
  }
  if (fflush(stdout) != 0) status = 1;
  return status;
}
