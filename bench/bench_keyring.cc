// bench_keyring.cc: Google Benchmark micro-benchmarks of the keyring's read
// side (DESIGN.md §4, §8): key-id lookup in a warm store of 100,000 tenants,
// snapshot swap (reload), opening a store, and loading a tenant of 1,000
// versions. Every benchmark runs 5 repetitions and reports mean, median,
// stddev and cv; read the median (the machine this was written on is small
// and noisy).
//
// The stores are built once and cached (keyring_fixture.h):
//   LICENSOR_BENCH_DIR      cache root (default /tmp/licensor-bench-store)
//   LICENSOR_BENCH_TENANTS  tenants in the lookup/reload/open store (default 100000)
// All library calls go through the public API (licensor.h) or, where the
// internals are needed, the C fixture.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "keyring_fixture.h"

namespace
{

constexpr size_t kDefaultTenantCount = 100000;
constexpr size_t kWideVersionCount = 1000;
constexpr size_t kProbeCount = size_t{1} << 18; // a power of two: the index wraps with a mask
// Besides every tenant, lookups run over these hot working sets (the first
// N tenants): what a skewed load, a few busy tenants, looks like.
constexpr size_t kHotTenantCounts[] = {1000, 16};
constexpr uint64_t kProbeSeed = 20261123;
constexpr const char *kRewrittenTenant = "tenant-000000";

// One lookup to make: the tenant, the key id (hex for the public API, bytes
// for the internal path) and the version it must find. One cache line each.
struct alignas(64) Probe {
	char tenant[BENCH_TENANT_NAME_SIZE];
	char key_id_hex[BENCH_KEY_ID_HEX_SIZE];
	uint8_t key_id[BENCH_KEY_ID_LENGTH];
	uint32_t version;
};

size_t TenantCountFromEnvironment()
{
	const char *text = std::getenv("LICENSOR_BENCH_TENANTS");
	if (text == nullptr || *text == '\0')
		return kDefaultTenantCount;
	char *end = nullptr;
	unsigned long long value = std::strtoull(text, &end, 10);
	if (*end != '\0' || value == 0 || value > 1000000) {
		std::fprintf(stderr,
			     "bench: LICENSOR_BENCH_TENANTS=%s is not a count in 1..1000000; using %zu\n",
			     text, kDefaultTenantCount);
		return kDefaultTenantCount;
	}
	return static_cast<size_t>(value);
}

std::string Describe(const lic_error &error)
{
	return std::string(lic_status_code(error.status)) + ": " + error.message;
}

// Everything the benchmarks share, built on first use so that a filtered run
// builds only what it needs. On failure the accessors return nullptr and
// error() says why.
class Environment
{
      public:
	explicit Environment(size_t tenant_count) : tenant_count_(tenant_count)
	{
	}
	~Environment()
	{
		lic_keyring_close(keyring_);
		bench_store_close(wide_store_);
		bench_buffer_free(wide_file_);
	}
	Environment(const Environment &) = delete;
	Environment &operator=(const Environment &) = delete;

	size_t tenant_count() const
	{
		return tenant_count_;
	}
	const char *error() const
	{
		return error_.c_str();
	}

	// The tenants store, built or reused.
	const char *TenantsStore()
	{
		if (tenants_store_.empty() && error_.empty()) {
			char path[4096];
			lic_error error{};
			if (bench_store_prepare(bench_cache_root(), tenant_count_, path, sizeof path,
						&error) == LIC_OK)
				tenants_store_ = path;
			else
				error_ = "preparing the tenants store: " + Describe(error);
		}
		return tenants_store_.empty() ? nullptr : tenants_store_.c_str();
	}

	// A keyring on the tenants store with every tenant parsed.
	lic_keyring *WarmKeyring()
	{
		if (keyring_ != nullptr || TenantsStore() == nullptr)
			return keyring_;
		lic_error error{};
		lic_keyring *keyring = nullptr;
		if (bench_keyring_open(tenants_store_.c_str(), &keyring, &error) != LIC_OK ||
		    bench_keyring_warm(keyring, &error) != LIC_OK) {
			lic_keyring_close(keyring);
			error_ = "opening and warming the keyring: " + Describe(error);
			return nullptr;
		}
		keyring_ = keyring;
		return keyring_;
	}

	// Random probes over the first `tenants` tenants (uniform).
	const std::vector<Probe> *Probes(size_t tenants)
	{
		std::vector<Probe> &probes = probes_[tenants];
		if (!probes.empty())
			return &probes;
		if (!LoadKeyIds())
			return nullptr;
		std::mt19937_64 random(kProbeSeed + tenants);
		std::uniform_int_distribution<size_t> pick_tenant(0, tenants - 1);
		std::uniform_int_distribution<size_t> pick_version(0, BENCH_VERSIONS_PER_TENANT - 1);
		probes.resize(kProbeCount);
		for (Probe &probe : probes) {
			size_t tenant = pick_tenant(random), version = pick_version(random);
			const TenantKeys &keys = key_ids_[tenant];
			bench_tenant_name(tenant, probe.tenant);
			std::memcpy(probe.key_id_hex, keys.hex[version], BENCH_KEY_ID_HEX_SIZE);
			std::memcpy(probe.key_id, keys.binary[version], BENCH_KEY_ID_LENGTH);
			probe.version = static_cast<uint32_t>(version + 1);
		}
		return &probes;
	}

	// The store holding the tenant of kWideVersionCount versions, opened.
	bench_store *WideStore()
	{
		if (wide_store_ != nullptr || !error_.empty())
			return wide_store_;
		char path[4096];
		lic_error error{};
		bench_store *store = nullptr;
		if (bench_wide_store_prepare(bench_cache_root(), kWideVersionCount, path, sizeof path,
					     &error) != LIC_OK ||
		    bench_store_open(path, &store, &error) != LIC_OK ||
		    bench_store_read_tenant_file(store, BENCH_WIDE_TENANT_NAME, &wide_file_,
						 &wide_file_length_, &error) != LIC_OK) {
			bench_store_close(store);
			error_ = "preparing the wide tenant: " + Describe(error);
			return nullptr;
		}
		wide_store_ = store;
		return wide_store_;
	}
	const char *wide_file() const
	{
		return wide_file_;
	}
	size_t wide_file_length() const
	{
		return wide_file_length_;
	}

      private:
	struct TenantKeys {
		char hex[BENCH_VERSIONS_PER_TENANT][BENCH_KEY_ID_HEX_SIZE];
		uint8_t binary[BENCH_VERSIONS_PER_TENANT][BENCH_KEY_ID_LENGTH];
	};

	bool LoadKeyIds()
	{
		if (!key_ids_.empty())
			return true;
		if (WarmKeyring() == nullptr)
			return false;
		std::vector<TenantKeys> key_ids(tenant_count_);
		for (size_t i = 0; i < tenant_count_; i++) {
			char name[BENCH_TENANT_NAME_SIZE];
			size_t count = 0;
			lic_error error{};
			bench_tenant_name(i, name);
			if (bench_keyring_key_ids(keyring_, name, key_ids[i].hex, key_ids[i].binary,
						  BENCH_VERSIONS_PER_TENANT, &count, &error) != LIC_OK) {
				error_ = "reading key ids: " + Describe(error);
				return false;
			}
			if (count != BENCH_VERSIONS_PER_TENANT) {
				error_ = std::string("tenant ") + name + " does not have 3 versions";
				return false;
			}
		}
		key_ids_.swap(key_ids);
		return true;
	}

	size_t tenant_count_;
	std::string error_;
	std::string tenants_store_;
	lic_keyring *keyring_ = nullptr;
	std::vector<TenantKeys> key_ids_;
	std::map<size_t, std::vector<Probe>> probes_; // by working set
	bench_store *wide_store_ = nullptr;
	char *wide_file_ = nullptr;
	size_t wide_file_length_ = 0;
};

Environment *environment = nullptr;

// ---- 1. key-id lookup ----

// lic_keyring_lookup, the public API: hex decode, read section, tenant by
// name, version by key id, effective state at the keyring's clock.
void LookupPublic(benchmark::State &state, size_t tenants)
{
	lic_keyring *keyring = environment->WarmKeyring();
	const std::vector<Probe> *probes = keyring ? environment->Probes(tenants) : nullptr;
	if (probes == nullptr) {
		state.SkipWithError(environment->error());
		return;
	}
	size_t index = 0, wrong = 0;
	lic_key_info info{};
	lic_error error{};
	for (auto _ : state) {
		const Probe &probe = (*probes)[index];
		lic_status status =
		    lic_keyring_lookup(keyring, probe.tenant, probe.key_id_hex, &info, &error);
		wrong += (status != LIC_OK) | (info.version != probe.version);
		benchmark::DoNotOptimize(info);
		index = (index + 1) & (kProbeCount - 1);
	}
	if (wrong != 0)
		state.SkipWithError("a lookup failed or found the wrong version");
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// The internal path only: read section, snapshot, tenant, key id index; no
// hex decoding, no clock, no copy into lic_key_info.
void LookupInternal(benchmark::State &state, size_t tenants)
{
	lic_keyring *keyring = environment->WarmKeyring();
	const std::vector<Probe> *probes = keyring ? environment->Probes(tenants) : nullptr;
	if (probes == nullptr) {
		state.SkipWithError(environment->error());
		return;
	}
	size_t index = 0, wrong = 0;
	for (auto _ : state) {
		const Probe &probe = (*probes)[index];
		uint32_t version = bench_keyring_lookup_internal(keyring, probe.tenant, probe.key_id);
		wrong += version != probe.version;
		benchmark::DoNotOptimize(version);
		index = (index + 1) & (kProbeCount - 1);
	}
	if (wrong != 0)
		state.SkipWithError("a lookup failed or found the wrong version");
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// ---- 2. snapshot swap ----

// lic_keyring_reload of the warm keyring. With one_changed, one tenant file is
// rewritten (outside the timed region) before each reload, so the reload
// builds one new slot and shares the others.
void Reload(benchmark::State &state, bool one_changed)
{
	lic_keyring *keyring = environment->WarmKeyring();
	if (keyring == nullptr) {
		state.SkipWithError(environment->error());
		return;
	}
	lic_error error{};
	for (auto _ : state) {
		if (one_changed) {
			state.PauseTiming();
			lic_status status = bench_keyring_rewrite_tenant(keyring, kRewrittenTenant, &error);
			state.ResumeTiming();
			if (status != LIC_OK) {
				state.SkipWithError(Describe(error).c_str());
				break;
			}
		}
		if (lic_keyring_reload(keyring, &error) != LIC_OK) {
			state.SkipWithError(Describe(error).c_str());
			break;
		}
	}
	state.counters["tenants"] = static_cast<double>(lic_keyring_tenant_count(keyring));
}

// ---- 3. opening a store ----

// lic_keyring_open: world.xml, KEK check, directory scan, one stat per tenant
// file, the tenant index; no tenant is parsed. Closing is not timed.
void Open(benchmark::State &state)
{
	const char *store = environment->TenantsStore();
	if (store == nullptr) {
		state.SkipWithError(environment->error());
		return;
	}
	lic_error error{};
	size_t tenants = 0;
	for (auto _ : state) {
		lic_keyring *keyring = nullptr;
		lic_keyring_options options{};
		options.store_dir = store;
		if (lic_keyring_open(&options, &keyring, &error) != LIC_OK) {
			state.SkipWithError(Describe(error).c_str());
			break;
		}
		state.PauseTiming();
		tenants = lic_keyring_tenant_count(keyring);
		lic_keyring_close(keyring);
		state.ResumeTiming();
	}
	state.counters["tenants"] = static_cast<double>(tenants);
}

// ---- 4. loading a tenant of 1,000 versions ----

// store_load_tenant: read tenants/wide.xml, parse, check every version (key
// id = hash of the public key), build the key id index. Freeing is not timed.
void TenantLoad(benchmark::State &state)
{
	bench_store *store = environment->WideStore();
	if (store == nullptr) {
		state.SkipWithError(environment->error());
		return;
	}
	lic_error error{};
	size_t versions = 0;
	for (auto _ : state) {
		bench_tenant *tenant = nullptr;
		if (bench_store_load_tenant(store, BENCH_WIDE_TENANT_NAME, &tenant, &error) != LIC_OK) {
			state.SkipWithError(Describe(error).c_str());
			break;
		}
		state.PauseTiming();
		versions = bench_tenant_version_count(tenant);
		bench_tenant_free(tenant);
		state.ResumeTiming();
	}
	state.counters["versions"] = static_cast<double>(versions);
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * environment->wide_file_length()));
}

// tenant_file_parse alone, from bytes already in memory.
void TenantParse(benchmark::State &state)
{
	if (environment->WideStore() == nullptr) {
		state.SkipWithError(environment->error());
		return;
	}
	lic_error error{};
	size_t versions = 0;
	for (auto _ : state) {
		bench_tenant *tenant = nullptr;
		if (bench_tenant_parse(environment->wide_file(), environment->wide_file_length(),
				       BENCH_WIDE_TENANT_NAME, &tenant, &error) != LIC_OK) {
			state.SkipWithError(Describe(error).c_str());
			break;
		}
		state.PauseTiming();
		versions = bench_tenant_version_count(tenant);
		bench_tenant_free(tenant);
		state.ResumeTiming();
	}
	state.counters["versions"] = static_cast<double>(versions);
	state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * environment->wide_file_length()));
}

benchmark::internal::Benchmark *Configure(benchmark::internal::Benchmark *benchmark, benchmark::TimeUnit unit)
{
	return benchmark->Unit(unit)->Repetitions(5)->ReportAggregatesOnly(true);
}

void RegisterAll(size_t tenant_count)
{
	const std::string all_tenants = "/tenants:" + std::to_string(tenant_count);
	const std::string versions = "/versions:" + std::to_string(kWideVersionCount);
	using benchmark::RegisterBenchmark;
	std::vector<size_t> working_sets{tenant_count};
	for (size_t hot : kHotTenantCounts)
		if (hot < tenant_count)
			working_sets.push_back(hot);
	for (size_t tenants : working_sets) {
		const std::string suffix =
		    (tenants == tenant_count ? "/tenants:" : "/hot_tenants:") + std::to_string(tenants);
		Configure(
		    RegisterBenchmark(("keyring_lookup/public" + suffix).c_str(), LookupPublic, tenants),
		    benchmark::kNanosecond);
		Configure(
		    RegisterBenchmark(("keyring_lookup/internal" + suffix).c_str(), LookupInternal, tenants),
		    benchmark::kNanosecond);
	}
	Configure(RegisterBenchmark(("keyring_reload/unchanged" + all_tenants).c_str(), Reload, false),
		  benchmark::kMillisecond);
	Configure(RegisterBenchmark(("keyring_reload/one_changed" + all_tenants).c_str(), Reload, true),
		  benchmark::kMillisecond);
	Configure(RegisterBenchmark(("keyring_open" + all_tenants).c_str(), Open), benchmark::kMillisecond);
	Configure(RegisterBenchmark(("tenant_load/store_load_tenant" + versions).c_str(), TenantLoad),
		  benchmark::kMillisecond);
	Configure(RegisterBenchmark(("tenant_load/tenant_file_parse" + versions).c_str(), TenantParse),
		  benchmark::kMillisecond);
}

} // namespace

int main(int argc, char **argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	size_t tenant_count = TenantCountFromEnvironment();
	Environment shared(tenant_count);
	environment = &shared;
	RegisterAll(tenant_count);
	benchmark::AddCustomContext("licensor", LIC_VERSION_STRING);
	benchmark::AddCustomContext("bench_cache_root", bench_cache_root());
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	environment = nullptr;
	return 0;
}
