/*
 * secure_memory.c: a thin layer over OpenSSL's secure heap
 * (CRYPTO_secure_malloc_init), which mmaps an arena, mlocks it and marks it
 * MADV_DONTDUMP. 32 MiB holds the private components of thousands of RSA
 * keys; when it is full OpenSSL refuses further secure allocations, which we
 * report rather than silently using ordinary memory.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include <openssl/crypto.h>

#include "licensor.h"
#include "secure_memory.h"

#define SECURE_HEAP_SIZE (32u * 1024 * 1024)
#define SECURE_HEAP_MIN_BLOCK 32

static pthread_once_t secure_once = PTHREAD_ONCE_INIT;
static int secure_active;

static void secure_memory_setup(void)
{
	if (CRYPTO_secure_malloc_initialized()) {
		secure_active = 1;
		return;
	}
	/* 1: locked and DONTDUMP; 2: mlock refused (RLIMIT_MEMLOCK) but DONTDUMP still holds. */
	secure_active = CRYPTO_secure_malloc_init(SECURE_HEAP_SIZE, SECURE_HEAP_MIN_BLOCK) != 0;
}

int secure_memory_init(void)
{
	pthread_once(&secure_once, secure_memory_setup);
	return secure_active;
}

void *secure_alloc(size_t size)
{
	secure_memory_init();
	return OPENSSL_secure_zalloc(size);
}

void secure_free(void *pointer, size_t size)
{
	if (pointer != NULL)
		OPENSSL_secure_clear_free(pointer, size);
}

int lic_process_harden(void)
{
	secure_memory_init();
	const char *allow = getenv("LICENSOR_ALLOW_CORE_DUMPS");
	if (allow != NULL && strcmp(allow, "1") == 0)
		return 0;
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0;
}
