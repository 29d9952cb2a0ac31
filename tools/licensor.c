/*
 * licensor.c: the `licensor` command: dispatch to the subcommands of
 * DESIGN.md §7b. Each subcommand prints its result on stdout and, on
 * failure, one line `licensor: CODE: sentence` on stderr.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage_text[] =
    "usage: licensor COMMAND [ARGS] [--store DIR]\n"
    "\n"
    "Keyring:\n"
    "  init        --store DIR [--kek-file F | --passphrase-file F | --pkcs11 URI]\n"
    "  tenant      add T [--algorithm rsa-2048|rsa-3072|rsa-4096 | --byok URI] | disable T | enable T | list "
    "[--json]\n"
    "  keys        list T [--json] | pubkey T --version N\n"
    "  rekey       T [--algorithm A] [--rollout DURATION | --immediate] [--reason routine|compromised] "
    "[--pending] [--byok URI]\n"
    "  rollout     status T [--json]\n"
    "  revoke      T --version N [--yes]\n"
    "  reinstate   T --version N\n"
    "  destroy     T --version N --yes\n"
    "  activate    T --version N\n"
    "  audit       verify\n"
    "  superuser   add T EMAIL | remove T EMAIL | list T [--json]\n"
    "  rewrap      T --out DIR [--list FILE] PL-FILE...  (PLs of older versions to the current one)\n"
    "\n"
    "Key custody:\n"
    "  tpd         createkey [--out DIR]\n"
    "              unwrap --key PrivateKey-<GUID>.txt --target TPD-<GUID>.xml [--out DIR]\n"
    "  export      T --to PublicKey-<GUID>.txt [--out DIR]          (TPD-<GUID>.xml; BYOK: NOT_EXPORTABLE)\n"
    "  import      T --tpd ExportedTPD-<GUID>.xml --password-file Password-<GUID>.txt\n"
    "  backup      --out FILE                  (every tenant, sealed under the world's KEK)\n"
    "  restore     FILE [--force]              (only into a store of the same world)\n"
    "  pkcs11      keygen URI (--rsa BITS | --aes-256) | show URI [--pem]\n"
    "  BYOK:       tenant add T --byok URI | rekey T --byok URI | init --pkcs11 URI  [--pkcs11-module PATH]\n"
    "\n"
    "Licenses:\n"
    "  certify     T --principal EMAIL --pubkey user.pem [--days 31]          > rac.xml\n"
    "  publish     T --content-id ID --owner EMAIL [--grant 'bob@x.com:VIEW,PRINT' ...]\n"
    "              [--client-id C | --pubkey FILE] [--content-key-out F]     > pl.xml\n"
    "  acquire     --rac rac.xml --pl pl.xml                                 > ul.xml\n"
    "  open        --ul ul.xml | --response r.xml [--index N] --user-key user.pem  (content key, hex)\n"
    "\n"
    "Server:\n"
    "  serve       [--listen 127.0.0.1:8080] [--workers N] [--admin-token-file F] [limits: see --help]\n"
    "\n"
    "Benchmarks:\n"
    "  bench       issue [--hot] [--workers N] [--seconds S] [--algorithm A] [--batch B]\n"
    "  replay      FILE [--workers N] [--repeat K] [--in-flight N] [--queue N]\n"
    "  simulate    --csv FILE [--days D] [--rekey-day D] [--rollout D] [--plot F.png] [--json] (see --help)\n"
    "\n"
    "Every command takes --store DIR (default: $LICENSOR_STORE, else ./var/licensor) and --help.\n"
    "Durations: 90s, 45m, 6h, 14d.\n";

struct command {
	const char *name;
	int (*run)(int argc, char **argv);
};

static const struct command commands[] = {
    {"init", command_init},           {"tenant", command_tenant},     {"keys", command_keys},
    {"rekey", command_rekey},         {"rollout", command_rollout},   {"revoke", command_lifecycle},
    {"reinstate", command_lifecycle}, {"destroy", command_lifecycle}, {"activate", command_lifecycle},
    {"audit", command_audit},         {"certify", command_certify},   {"publish", command_publish},
    {"acquire", command_acquire},     {"open", command_open},         {"bench", command_bench},
    {"superuser", command_superuser}, {"serve", command_serve},       {"replay", command_replay},
    {"simulate", command_simulate},   {"pkcs11", command_pkcs11},     {"tpd", command_tpd},
    {"export", command_export},       {"import", command_import},     {"backup", command_backup},
    {"restore", command_restore},     {"rewrap", command_rewrap},
};

int main(int argc, char **argv)
{
	/* Keys are decrypted in this process: keep them out of core dumps. */
	lic_process_harden();
	if (argc < 2) {
		fputs("licensor: USAGE: no command given (see licensor --help)\n", stderr);
		return 2;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("licensor %s\n", LIC_VERSION_STRING);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (strcmp(argv[1], commands[i].name) == 0)
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "licensor: USAGE: unknown command '%.64s' (see licensor --help)\n", argv[1]);
	return 2;
}
