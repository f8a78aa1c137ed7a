/*
 * The object store's sealer: AES-256-GCM of one chunk, written into a buffer the caller owns.
 *
 * Why this exists: Node's cipher.update() allocates its output, then allocates a second,
 * zero-filled buffer and copies the output into it; for the object store's 256 KiB chunks that
 * costs as much CPU as the cipher itself, and every output is a new ArrayBuffer for V8's heap to
 * account for. This does the same EVP calls Node makes (through the OpenSSL the node binary
 * already carries and exports: nothing is linked in) into the writer's reusable batches.
 *
 * Optional: when it is not built (no compiler at install), or fails its self-test at load, the
 * store seals with node:crypto and the files are the same bytes (src/objects/native.ts).
 */
#include <limits.h>
#include <stdint.h>
#include <node_api.h>
#include <openssl/err.h>
#include <openssl/evp.h>

typedef struct {
  uint8_t *data;
  size_t len;
} bytes_t;

/* A Uint8Array (a Buffer is one) or nothing: any other value is the caller's bug. */
static int get_bytes(napi_env env, napi_value v, bytes_t *out) {
  napi_typedarray_type type;
  napi_value ab;
  size_t offset;
  void *data = NULL;
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  if (napi_get_typedarray_info(env, v, &type, &out->len, &data, &ab, &offset) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  out->data = data;
  return 1;
}

static int overlaps(const bytes_t *a, const bytes_t *b) {
  if (a->len == 0 || b->len == 0) return 0;
  uintptr_t a0 = (uintptr_t)a->data, b0 = (uintptr_t)b->data;
  return a0 < b0 + b->len && b0 < a0 + a->len;
}

/* sealInto(key[32], iv[12], aad, src, dst[src.length], tag[16]): undefined, or throws. */
static napi_value SealInto(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  bytes_t key, iv, aad, src, dst, tag;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 6) {
    napi_throw_type_error(env, NULL, "sealInto takes six arguments");
    return NULL;
  }
  if (!get_bytes(env, argv[0], &key) || !get_bytes(env, argv[1], &iv) || !get_bytes(env, argv[2], &aad) ||
      !get_bytes(env, argv[3], &src) || !get_bytes(env, argv[4], &dst) || !get_bytes(env, argv[5], &tag)) {
    napi_throw_type_error(env, NULL, "sealInto takes Uint8Arrays");
    return NULL;
  }
  if (key.len != 32 || iv.len != 12 || tag.len != 16 || dst.len != src.len || src.len > INT_MAX || aad.len > INT_MAX) {
    napi_throw_range_error(env, NULL, "sealInto: a key of 32 bytes, an iv of 12, a tag of 16, and dst as long as src");
    return NULL;
  }
  /* Neither output may overlap an input or the other output: whatever a caller did, the
     ciphertext and tag are computed from the bytes it was given, and nothing it gave is changed. */
  if (overlaps(&dst, &src) || overlaps(&dst, &key) || overlaps(&dst, &iv) || overlaps(&dst, &aad) || overlaps(&tag, &src) ||
      overlaps(&tag, &key) || overlaps(&tag, &iv) || overlaps(&tag, &aad) || overlaps(&tag, &dst)) {
    napi_throw_range_error(env, NULL, "sealInto: the output overlaps an input");
    return NULL;
  }
  /* GCM's final step outputs nothing (checked: n stays 0); it is given scratch of its own so
     that nothing could be written past dst, and no arithmetic is done on an empty array's
     pointer, which Node-API may give as NULL. */
  unsigned char fin[EVP_MAX_BLOCK_LENGTH];
  EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
  int ok = ctx != NULL, n = 0;
  if (ok) ok = EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key.data, iv.data) == 1;
  if (ok && aad.len > 0) ok = EVP_EncryptUpdate(ctx, NULL, &n, aad.data, (int)aad.len) == 1;
  if (ok && src.len > 0) ok = EVP_EncryptUpdate(ctx, dst.data, &n, src.data, (int)src.len) == 1 && (size_t)n == src.len;
  if (ok) ok = EVP_EncryptFinal_ex(ctx, fin, &n) == 1 && n == 0;
  if (ok) ok = EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag.data) == 1;
  /* Frees the key schedule, which OpenSSL cleanses first. */
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    /* Nothing of this failure may linger for Node's own crypto calls to find. */
    ERR_clear_error();
    napi_throw_error(env, NULL, "sealInto: OpenSSL failed to seal");
  }
  return NULL;
}

static napi_value Init(napi_env env, napi_value exports) {
  napi_value fn;
  if (napi_create_function(env, "sealInto", NAPI_AUTO_LENGTH, SealInto, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "sealInto", fn) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
