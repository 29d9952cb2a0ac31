/*
 * secure_memory.h: where decrypted key material lives.
 *
 * Plaintext private keys (PKCS#8 DER, the KEK) are kept in OpenSSL's secure
 * heap: pages that are locked in memory where the system allows it and
 * marked MADV_DONTDUMP, so they never reach a core dump or swap. OpenSSL also
 * puts the private components of RSA keys it decodes there. Every buffer is
 * wiped (OPENSSL_cleanse) before it is released.
 */
#ifndef LICENSOR_KEYRING_SECURE_MEMORY_H
#define LICENSOR_KEYRING_SECURE_MEMORY_H

#include <stddef.h>

/* Sets up the secure heap once per process; safe to call from any thread, any
 * number of times. Returns 1 when the heap is active. */
int secure_memory_init(void);

/* Zeroed secure memory, or NULL. */
void *secure_alloc(size_t size);
/* Wipes and frees; NULL is a no-op. */
void secure_free(void *pointer, size_t size);

#endif
