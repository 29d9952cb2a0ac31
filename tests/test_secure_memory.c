/*
 * test_secure_memory.c: decrypted key material stays out of core dumps.
 *
 * A child process opens a store and decrypts a private key; the parent takes
 * a core of it with gdb's gcore (which, like the kernel, leaves out mappings
 * marked MADV_DONTDUMP) and searches the core for the KEK, and for pieces of
 * the private exponent d and the prime p in the little-endian limb order
 * OpenSSL keeps them in. A second child generates a key and seals it the way
 * store_generate_version does, frees it, and the parent searches its core for
 * a piece of d in big-endian (DER) and little-endian (limb) order: sealing
 * must not leave the PKCS#8 encoding, or any copy of d, in ordinary memory.
 * A control core taken with `set dump-excluded-mappings on` must contain
 * every needle: that proves the search would find them if they leaked.
 *
 * Also: key_material_private_der, which builds PKCS#8 in secure memory by
 * hand, is byte-identical to OpenSSL's encoder and round-trips through
 * key_material_from_private_der; lic_process_harden makes the process
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
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "keyring/admin.h"
#include "keyring/key_material.h"
#include "keyring/secure_memory.h"
#include "keyring/store.h"
#include "test_helpers.h"

#define NEEDLE_LENGTH 24

struct needles {
	uint8_t kek[NEEDLE_LENGTH];
	uint8_t d[NEEDLE_LENGTH];
	uint8_t p[NEEDLE_LENGTH];
};

/* Pieces of d of a key that was sealed and freed. */
struct sealed_needles {
	uint8_t d_big_endian[NEEDLE_LENGTH];
	uint8_t d_limb_order[NEEDLE_LENGTH];
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

/* The same bytes as limb_order_slice, in big-endian order: as DER and BN_bn2bin write them. */
static void big_endian_slice(const BIGNUM *number, uint8_t out[NEEDLE_LENGTH])
{
	uint8_t big_endian[512];
	int length = BN_num_bytes(number);
	BN_bn2bin(number, big_endian);
	memcpy(out, big_endian + length - 64 - NEEDLE_LENGTH, NEEDLE_LENGTH);
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

/*
 * Child: generate a key and seal it as store_generate_version does, then free
 * it. d survives only in a control copy in secure memory, which gcore leaves
 * out unless told otherwise. Sends the needles, then waits to be dumped.
 */
static void child_seal_key(int to_parent)
{
	char store_path[128];
	snprintf(store_path, sizeof store_path, "%s/store", directory);
	struct store_options options = {.directory = store_path};
	struct store *store = NULL;
	EVP_PKEY *key = NULL;
	BIGNUM *d = NULL;
	lic_error error = {0};
	if (store_open(&options, &store, &error) != LIC_OK ||
	    key_material_generate(KEY_ALGORITHM_RSA_2048, &key, &error) != LIC_OK)
		_exit(3);
	if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_D, &d) != 1)
		_exit(5);
	struct sealed_needles needles;
	big_endian_slice(d, needles.d_big_endian);
	limb_order_slice(d, needles.d_limb_order);
	/* The control copy: d in both byte orders, written by OpenSSL straight into secure memory. */
	size_t d_size = (size_t)BN_num_bytes(d);
	uint8_t *control = secure_alloc(2 * d_size);
	if (control == NULL || BN_bn2binpad(d, control, (int)d_size) < 0 ||
	    BN_bn2lebinpad(d, control + d_size, (int)d_size) < 0)
		_exit(5);
	BN_clear_free(d);

	struct key_version version = {.number = 2, .algorithm = KEY_ALGORITHM_RSA_2048};
	if (key_material_public_der(key, &version.public_key_der, &version.public_key_length, &error) !=
	    LIC_OK)
		_exit(7);
	key_id_of_spki(version.public_key_der, version.public_key_length, version.key_id);
	if (store_seal_private_key(store->kek, "contoso", &version, key, &error) != LIC_OK)
		_exit(8);
	EVP_PKEY_free(key);
	free(version.public_key_der);
	free(version.sealed_private_key);
	store_close(store);

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

/* A new store in a new directory with tenant contoso (one RSA-2048 version). */
static void create_store_with_tenant(void)
{
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
}

static void remove_store_directory(void)
{
	char command[128];
	snprintf(command, sizeof command, "rm -rf '%s'", directory);
	assert_int_equal(system(command), 0);
}

/*
 * Forks a child that runs `child`, reads the `size` bytes of needles it
 * sends, takes its core (directory/core) and a control core that includes
 * the excluded mappings (directory/control), and ends it.
 */
static void dump_child(void (*child)(int to_parent), void *needles, size_t size)
{
	int channel[2];
	assert_int_equal(pipe(channel), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(channel[0]);
		child(channel[1]);
	}
	close(channel[1]);
	ssize_t received = read(channel[0], needles, size);
	close(channel[0]);
	if (received != (ssize_t)size) {
		int status = 0;
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
		fail_msg("the child sent no needles (exit status %d)",
			 WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	}
	char core[160], control[160];
	snprintf(core, sizeof core, "%s/core", directory);
	snprintf(control, sizeof control, "%s/control", directory);
	take_core(pid, core, false);
	take_core(pid, control, true);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_decrypted_keys_are_not_dumped(void **state)
{
	(void)state;
#ifdef UNDER_ADDRESS_SANITIZER
	skip(); /* proven in the normal build; a core of an ASan process is terabytes */
#endif
	create_store_with_tenant();
	struct needles needles;
	dump_child(child_hold_key, &needles, sizeof needles);

	char core[160], control[160];
	snprintf(core, sizeof core, "%s/core", directory);
	snprintf(control, sizeof control, "%s/control", directory);
	/* The control proves each needle is findable where it lives. */
	assert_true(core_contains(control, needles.kek));
	assert_true(core_contains(control, needles.d));
	assert_true(core_contains(control, needles.p));
	/* The real dump has none of them. */
	assert_false(core_contains(core, needles.kek));
	assert_false(core_contains(core, needles.d));
	assert_false(core_contains(core, needles.p));
	remove_store_directory();
}

/* Sealing used to leave two big-endian copies of d (OpenSSL's PKCS#8 encoder) in the heap. */
static void test_sealing_leaves_no_copy_of_d(void **state)
{
	(void)state;
#ifdef UNDER_ADDRESS_SANITIZER
	skip(); /* proven in the normal build; a core of an ASan process is terabytes */
#endif
	create_store_with_tenant();
	struct sealed_needles needles;
	dump_child(child_seal_key, &needles, sizeof needles);

	char core[160], control[160];
	snprintf(core, sizeof core, "%s/core", directory);
	snprintf(control, sizeof control, "%s/control", directory);
	assert_true(core_contains(control, needles.d_big_endian));
	assert_true(core_contains(control, needles.d_limb_order));
	assert_false(core_contains(core, needles.d_big_endian));
	assert_false(core_contains(core, needles.d_limb_order));
	remove_store_directory();
}

/* OpenSSL's own encoding of a private key, for comparison (ordinary heap: test only). */
static void openssl_pkcs8(EVP_PKEY *key, uint8_t **der, int *length)
{
	PKCS8_PRIV_KEY_INFO *info = EVP_PKEY2PKCS8(key);
	assert_non_null(info);
	*der = NULL;
	*length = i2d_PKCS8_PRIV_KEY_INFO(info, der);
	assert_true(*length > 0);
	PKCS8_PRIV_KEY_INFO_free(info);
}

/* Our encoding equals OpenSSL's, and reading it back gives the same key and the same encoding. */
static void assert_private_der_matches_openssl(EVP_PKEY *key)
{
	lic_error error = {0};
	uint8_t *der = NULL, *expected = NULL, *again = NULL;
	size_t length = 0, again_length = 0;
	int expected_length = 0;
	assert_int_equal(key_material_private_der(key, &der, &length, &error), LIC_OK);
	assert_true(CRYPTO_secure_allocated(der));
	openssl_pkcs8(key, &expected, &expected_length);
	assert_int_equal(length, (size_t)expected_length);
	assert_memory_equal(der, expected, length);

	EVP_PKEY *read_back = NULL;
	assert_int_equal(key_material_from_private_der(der, length, &read_back, &error), LIC_OK);
	assert_int_equal(EVP_PKEY_eq(key, read_back), 1);
	assert_int_equal(key_material_private_der(read_back, &again, &again_length, &error), LIC_OK);
	assert_int_equal(again_length, length);
	assert_memory_equal(again, der, length);

	EVP_PKEY_free(read_back);
	secure_free(again, again_length);
	secure_free(der, length);
	OPENSSL_free(expected);
}

static void test_private_der_is_openssl_pkcs8(void **state)
{
	(void)state;
	/*
	 * 1024 bits: INTEGERs with short and 0x81 lengths, an 0x82 OCTET STRING;
	 * 2048 bits: an 0x82 INTEGER (n). n always needs a leading 0x00, e never
	 * does; over a few keys the other components take both forms.
	 */
	for (int i = 0; i < 8; i++) {
		EVP_PKEY *key = NULL;
		lic_error error = {0};
		assert_int_equal(key_material_generate(
				     i < 6 ? KEY_ALGORITHM_RSA_1024 : KEY_ALGORITHM_RSA_2048, &key, &error),
				 LIC_OK);
		assert_private_der_matches_openssl(key);
		EVP_PKEY_free(key);
	}
}

static void test_private_der_with_exponent_three(void **state)
{
	(void)state;
	EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	BIGNUM *three = BN_new();
	EVP_PKEY *key = NULL;
	assert_non_null(context);
	assert_int_equal(BN_set_word(three, 3), 1);
	assert_int_equal(EVP_PKEY_keygen_init(context), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(context, 1024), 1);
	assert_int_equal(EVP_PKEY_CTX_set1_rsa_keygen_pubexp(context, three), 1);
	assert_int_equal(EVP_PKEY_generate(context, &key), 1);
	assert_private_der_matches_openssl(key);
	EVP_PKEY_free(key);
	BN_free(three);
	EVP_PKEY_CTX_free(context);
}

static void assert_private_der_refused(EVP_PKEY *key, lic_status expected)
{
	lic_error error = {0};
	uint8_t *der = NULL;
	size_t length = 0;
	assert_int_equal(key_material_private_der(key, &der, &length, &error), expected);
	assert_null(der);
	assert_int_equal(length, 0);
}

static void test_private_der_refuses_what_it_cannot_encode(void **state)
{
	(void)state;
	/* An EC key. */
	EVP_PKEY *ec = EVP_EC_gen("P-256");
	assert_non_null(ec);
	assert_private_der_refused(ec, LIC_UNSUPPORTED_VERSION);
	EVP_PKEY_free(ec);

	/* A three-prime RSA key: its otherPrimeInfos would be lost. */
	EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	EVP_PKEY *multi_prime = NULL;
	assert_non_null(context);
	assert_int_equal(EVP_PKEY_keygen_init(context), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_bits(context, 1024), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_keygen_primes(context, 3), 1);
	assert_int_equal(EVP_PKEY_generate(context, &multi_prime), 1);
	assert_private_der_refused(multi_prime, LIC_UNSUPPORTED_VERSION);
	EVP_PKEY_free(multi_prime);
	EVP_PKEY_CTX_free(context);

	/* A public key alone. */
	EVP_PKEY *key = NULL, *public_only = NULL;
	uint8_t *spki = NULL;
	size_t spki_length = 0;
	lic_error error = {0};
	assert_int_equal(key_material_generate(KEY_ALGORITHM_RSA_1024, &key, &error), LIC_OK);
	assert_int_equal(key_material_public_der(key, &spki, &spki_length, &error), LIC_OK);
	assert_int_equal(key_material_from_public_der(spki, spki_length, &public_only, &error), LIC_OK);
	assert_private_der_refused(public_only, LIC_INTERNAL);
	EVP_PKEY_free(public_only);
	EVP_PKEY_free(key);
	free(spki);
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
	    cmocka_unit_test(test_sealing_leaves_no_copy_of_d),
	    cmocka_unit_test(test_private_der_is_openssl_pkcs8),
	    cmocka_unit_test(test_private_der_with_exponent_three),
	    cmocka_unit_test(test_private_der_refuses_what_it_cannot_encode),
	    cmocka_unit_test(test_harden_makes_the_process_non_dumpable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
