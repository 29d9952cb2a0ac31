/*
 * test_secure_memory.c: decrypted key material stays out of core dumps.
 *
 * A child process opens a store and decrypts a private key; the parent takes
 * a core of it with gdb's gcore (which, like the kernel, leaves out mappings
 * marked MADV_DONTDUMP) and searches the core for the KEK, and for pieces of
 * the private exponent d and the prime p in the little-endian limb order
 * OpenSSL keeps them in. A control core taken with
 * `set dump-excluded-mappings on` must contain them: that proves the search
 * would find them if they leaked. Also: lic_process_harden makes the process
 * non-dumpable unless LICENSOR_ALLOW_CORE_DUMPS=1.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyring/admin.h"
#include "keyring/store.h"
#include "test_helpers.h"

#define NEEDLE_LENGTH 24

struct needles {
	uint8_t kek[NEEDLE_LENGTH];
	uint8_t d[NEEDLE_LENGTH];
	uint8_t p[NEEDLE_LENGTH];
};

static char directory[64];

/* The middle of a big number, in the order its 64-bit little-endian limbs hold it. */
static void limb_order_slice(const BIGNUM *number, uint8_t out[NEEDLE_LENGTH])
{
	uint8_t big_endian[512];
	int length = BN_num_bytes(number);
	BN_bn2bin(number, big_endian);
	for (int i = 0; i < NEEDLE_LENGTH; i++)
		out[i] = big_endian[length - 1 - 64 - i];
	OPENSSL_cleanse(big_endian, sizeof big_endian);
}

/* Child: decrypt a key, send the needles, then wait to be dumped. */
static void child_hold_key(int to_parent)
{
	char store_path[128], kek_path[128];
	snprintf(store_path, sizeof store_path, "%s/store", directory);
	snprintf(kek_path, sizeof kek_path, "%s/store.kek", directory);
	struct store_options options = {.directory = store_path};
	struct store *store = NULL;
	struct tenant *tenant = NULL;
	EVP_PKEY *key = NULL;
	lic_error error = {0};
	if (store_open(&options, &store, &error) != LIC_OK ||
	    store_load_tenant(store, "contoso", &tenant, &error) != LIC_OK ||
	    store_open_private_key(store->kek, "contoso", tenant_version(tenant, 1), &key, &error) != LIC_OK)
		_exit(3);
	struct needles needles;
	/* read(2), not stdio: a stdio buffer would leave the KEK in this test's own heap. */
	int kek_fd = open(kek_path, O_RDONLY);
	if (kek_fd < 0 || read(kek_fd, needles.kek, NEEDLE_LENGTH) != NEEDLE_LENGTH)
		_exit(4);
	close(kek_fd);
	BIGNUM *d = NULL, *p = NULL;
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_D, &d) != 1 ||
	    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR1, &p) != 1)
		_exit(5);
	limb_order_slice(d, needles.d);
	limb_order_slice(p, needles.p);
	BN_clear_free(d); /* our copies, not the key's: wiped */
	BN_clear_free(p);
	if (write(to_parent, &needles, sizeof needles) != sizeof needles)
		_exit(6);
	OPENSSL_cleanse(&needles, sizeof needles);
	for (;;)
		pause();
}

static bool core_contains(const char *path, const uint8_t *needle)
{
	FILE *file = fopen(path, "rb");
	assert_non_null(file);
	fseek(file, 0, SEEK_END);
	long size = ftell(file);
	fseek(file, 0, SEEK_SET);
	uint8_t *data = malloc((size_t)size);
	assert_int_equal(fread(data, 1, (size_t)size, file), (size_t)size);
	fclose(file);
	bool found = memmem(data, (size_t)size, needle, NEEDLE_LENGTH) != NULL;
	free(data);
	return found;
}

/* AddressSanitizer maps terabytes of shadow memory, which gcore would write out. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ADDRESS_SANITIZER 1
#endif
#endif

static void take_core(pid_t pid, const char *path, bool include_excluded)
{
	char command[512];
	/* ulimit -f caps the core at 1 GiB whatever happens: a test must never fill the disk. */
	snprintf(command, sizeof command,
		 "ulimit -f 1048576; gdb -batch -nx -p %d %s -ex 'gcore %s' >/dev/null 2>&1 && test -s %s",
		 (int)pid, include_excluded ? "-ex 'set dump-excluded-mappings on'" : "", path, path);
	if (system(command) != 0)
		fail_msg("gdb could not take a core of process %d (is gdb installed? ./setup installs it)",
			 (int)pid);
}

static void test_decrypted_keys_are_not_dumped(void **state)
{
	(void)state;
#ifdef UNDER_ADDRESS_SANITIZER
	skip(); /* proven in the normal build; a core of an ASan process is terabytes */
#endif
	snprintf(directory, sizeof directory, "/tmp/licensor-dump-XXXXXX");
	assert_non_null(mkdtemp(directory));
	char store_path[128];
	snprintf(store_path, sizeof store_path, "%s/store", directory);
	struct store_options options = {.directory = store_path};
	struct store *store = NULL;
	lic_error error = {0};
	assert_int_equal(store_init(&options, &store, &error), LIC_OK);
	struct admin_context context = {.store = store, .actor = "test"};
	assert_int_equal(admin_tenant_add(&context, "contoso", KEY_ALGORITHM_RSA_2048, &error), LIC_OK);
	store_close(store);

	int channel[2];
	assert_int_equal(pipe(channel), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(channel[0]);
		child_hold_key(channel[1]);
	}
	close(channel[1]);
	struct needles needles;
	assert_int_equal(read(channel[0], &needles, sizeof needles), sizeof needles);
	close(channel[0]);

	char core[160], control[160];
	snprintf(core, sizeof core, "%s/core", directory);
	snprintf(control, sizeof control, "%s/control", directory);
	take_core(pid, core, false);
	take_core(pid, control, true);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* The control proves each needle is findable where it lives. */
	assert_true(core_contains(control, needles.kek));
	assert_true(core_contains(control, needles.d));
	assert_true(core_contains(control, needles.p));
	/* The real dump has none of them. */
	assert_false(core_contains(core, needles.kek));
	assert_false(core_contains(core, needles.d));
	assert_false(core_contains(core, needles.p));

	char command[128];
	snprintf(command, sizeof command, "rm -rf '%s'", directory);
	assert_int_equal(system(command), 0);
}

static int dumpable_after_harden(const char *allow)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (allow)
			setenv("LICENSOR_ALLOW_CORE_DUMPS", allow, 1);
		else
			unsetenv("LICENSOR_ALLOW_CORE_DUMPS");
		lic_process_harden();
		_exit(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	}
	int status = 0;
	waitpid(pid, &status, 0);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_harden_makes_the_process_non_dumpable(void **state)
{
	(void)state;
	assert_int_equal(dumpable_after_harden(NULL), 0);
	assert_int_equal(dumpable_after_harden("0"), 0);
	assert_int_equal(dumpable_after_harden("1"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decrypted_keys_are_not_dumped),
	    cmocka_unit_test(test_harden_makes_the_process_non_dumpable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
