// bench_issue.cc: Google Benchmark micro-benchmarks of the issuance pipeline
// (DESIGN.md §5, §8): each step of a license on its own, OpenSSL's own RSA
// signatures as the reference a license is measured against, and whole
// licenses through lic_engine_issue, cold (every license unwraps its content
// key) and hot (PL cache hits), on 1 and 2 workers.
//
// Every benchmark runs 5 repetitions and reports mean, median, stddev and cv;
// read the median (the machine this was written on is small, shared and
// noisy). Compare the engine's `private_ops_per_s` with
// `ceiling/evp_pkey_sign` at the same thread count from the same run: their
// ratio is the efficiency `licensor bench issue` prints.
//
// The world (a temporary store with tenant "bench", rsa-2048, a reader with a
// RAC, 4,096 PLs) is built once at start-up by the C fixture
// (issue_fixture.h), which also runs the single steps: the core's headers
// cannot be included from C++. The store is removed at exit.
#include <benchmark/benchmark.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "issue_fixture.h"

namespace
{

constexpr size_t kColdPlCount = 4096; // cycled: the cold engines have no PL cache, a repeat still unwraps
constexpr size_t kHotPlCount = 64;    // the hot engines' working set, cached before timing
// The hot engines' PL cache: room for the working set. The default (65,536
// entries) takes half of the 32 MiB secure heap, so two default caches do
// not fit in one process.
constexpr size_t kHotPlCacheEntries = 4096;
constexpr size_t kBatch = 64; // requests per lic_engine_issue call = the engine's batch_max
constexpr unsigned kSubmittersPerWorker = 2;
constexpr unsigned kWorkerCounts[] = {1, 2};
constexpr int kRepetitions = 5;

issue_fixture *fixture = nullptr;
std::vector<EVP_PKEY *> thread_keys; // the tenant's key, one copy per benchmark thread

std::string Describe(const lic_error &error)
{
	return std::string(lic_status_code(error.status)) + ": " + error.message;
}

// ---- single steps ----

using StepFunction = lic_status (*)(issue_fixture *, lic_error *);

void Step(benchmark::State &state, StepFunction step)
{
	lic_error error{};
	for (auto _ : state) {
		if (step(fixture, &error) != LIC_OK) {
			state.SkipWithError(Describe(error).c_str());
			break;
		}
	}
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

lic_status RacRead(issue_fixture *f, lic_error *error)
{
	return issue_fixture_rac_read(f, false, error);
}

lic_status RacReadVerify(issue_fixture *f, lic_error *error)
{
	return issue_fixture_rac_read(f, true, error);
}

lic_status UseLicenseBuild(issue_fixture *f, lic_error *error)
{
	return issue_fixture_use_license_build(f, false, error);
}

lic_status UseLicenseBuildSerialize(issue_fixture *f, lic_error *error)
{
	return issue_fixture_use_license_build(f, true, error);
}

const unsigned char kDigest[32] = {0x5a, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
				   0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
				   0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f};

// EVP_DigestSign of 32 bytes, RSA PKCS#1 v1.5 SHA-256, with a new context per
// signature: what xml_signature_sign does for every license.
void SignDigestSign(benchmark::State &state)
{
	EVP_PKEY *key = thread_keys[static_cast<size_t>(state.thread_index())];
	unsigned char signature[1024];
	for (auto _ : state) {
		EVP_MD_CTX *md = EVP_MD_CTX_new();
		EVP_PKEY_CTX *key_context = nullptr;
		size_t length = sizeof signature;
		bool ok = md != nullptr &&
			  EVP_DigestSignInit(md, &key_context, EVP_sha256(), nullptr, key) == 1 &&
			  EVP_PKEY_CTX_set_rsa_padding(key_context, RSA_PKCS1_PADDING) > 0 &&
			  EVP_DigestSign(md, signature, &length, kDigest, sizeof kDigest) == 1;
		EVP_MD_CTX_free(md);
		if (!ok) {
			state.SkipWithError("EVP_DigestSign failed");
			break;
		}
	}
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// The ceiling of `licensor bench issue`: EVP_PKEY_sign of a SHA-256 digest,
// RSA PKCS#1 v1.5, one context set up once per thread on the thread's own key.
void CeilingPkeySign(benchmark::State &state)
{
	EVP_PKEY *key = thread_keys[static_cast<size_t>(state.thread_index())];
	EVP_PKEY_CTX *context = EVP_PKEY_CTX_new(key, nullptr);
	if (context == nullptr || EVP_PKEY_sign_init(context) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(context, RSA_PKCS1_PADDING) <= 0 ||
	    EVP_PKEY_CTX_set_signature_md(context, EVP_sha256()) <= 0) {
		EVP_PKEY_CTX_free(context);
		state.SkipWithError("cannot set up EVP_PKEY_sign");
		return;
	}
	unsigned char signature[1024];
	for (auto _ : state) {
		size_t length = sizeof signature;
		if (EVP_PKEY_sign(context, signature, &length, kDigest, sizeof kDigest) != 1) {
			state.SkipWithError("EVP_PKEY_sign failed");
			break;
		}
	}
	EVP_PKEY_CTX_free(context);
	state.SetItemsProcessed(static_cast<int64_t>(state.iterations()));
}

// ---- whole licenses through the engine ----

struct EngineSetup {
	bool hot = false;
	unsigned workers = 0;
	lic_engine *engine = nullptr;
	std::atomic<size_t> next_pl{0}; // cold: the PL pool is cycled
};

EngineSetup engines[2][sizeof kWorkerCounts / sizeof kWorkerCounts[0]];

// Issues `count` requests starting at PL `first`; true when every one was OK.
bool IssueAll(lic_engine *engine, size_t first, size_t count, lic_error *error)
{
	std::vector<lic_license_request> requests(count);
	std::vector<lic_license_result> results(count);
	for (size_t i = 0; i < count; i++)
		requests[i] = issue_fixture_request(fixture, first + i);
	if (lic_engine_issue(engine, requests.data(), count, results.data(), error) != LIC_OK)
		return false;
	bool ok = true;
	for (lic_license_result &result : results) {
		if (ok && result.error.status != LIC_OK) {
			*error = result.error;
			ok = false;
		}
		std::free(result.use_license);
	}
	return ok;
}

// Cold: PL cache off (SIZE_MAX), so every license unwraps and signs. Hot:
// cache on (kHotPlCacheEntries) and holding the kHotPlCount PLs, so every
// license only signs.
bool MakeEngine(EngineSetup *setup, bool hot, unsigned workers, lic_error *error)
{
	setup->hot = hot;
	setup->workers = workers;
	lic_engine_options options{};
	options.keyring = issue_fixture_keyring(fixture);
	options.workers = workers;
	options.batch_max = kBatch;
	options.pl_cache_entries = hot ? kHotPlCacheEntries : SIZE_MAX;
	if (lic_engine_new(&options, &setup->engine, error) != LIC_OK)
		return false;
	// Warm up: every worker's key copy, and for hot the whole working set.
	return IssueAll(setup->engine, 0, hot ? kHotPlCount : kBatch * workers, error);
}

void EngineIssue(benchmark::State &state, EngineSetup *setup)
{
	std::vector<lic_license_request> requests(kBatch);
	std::vector<lic_license_result> results(kBatch);
	size_t hot_cursor = static_cast<size_t>(state.thread_index()) * (kHotPlCount / 4);
	uint64_t failed = 0;
	lic_error first_error{};
	for (auto _ : state) {
		for (size_t i = 0; i < kBatch; i++) {
			size_t index = setup->hot ? hot_cursor++ % kHotPlCount
						  : setup->next_pl.fetch_add(1, std::memory_order_relaxed);
			requests[i] = issue_fixture_request(fixture, index);
		}
		lic_error error{};
		if (lic_engine_issue(setup->engine, requests.data(), kBatch, results.data(), &error) !=
		    LIC_OK) {
			failed += kBatch;
			first_error = error;
			continue;
		}
		for (lic_license_result &result : results) {
			if (result.error.status != LIC_OK || result.use_license == nullptr) {
				if (failed++ == 0)
					first_error = result.error;
			}
			std::free(result.use_license);
		}
	}
	if (failed != 0)
		state.SkipWithError(("license requests failed; the first: " + Describe(first_error)).c_str());
	const int64_t licenses = static_cast<int64_t>(state.iterations() * kBatch);
	state.SetItemsProcessed(licenses);
	state.counters["private_ops_per_s"] = benchmark::Counter(
	    static_cast<double>(licenses * (setup->hot ? 1 : 2)), benchmark::Counter::kIsRate);
}

// ---- registration ----

benchmark::internal::Benchmark *Configure(benchmark::internal::Benchmark *benchmark, benchmark::TimeUnit unit)
{
	return benchmark->Unit(unit)->Repetitions(kRepetitions)->ReportAggregatesOnly(true);
}

// Single steps first, then per worker count the ceiling at that thread count
// right before the engine runs it is compared with, so that the ratio is
// taken from figures measured close together on a machine whose load moves.
void RegisterAll()
{
	using benchmark::RegisterBenchmark;
	const benchmark::TimeUnit us = benchmark::kMicrosecond;
	Configure(RegisterBenchmark("step/unwrap_oaep/rsa-2048", Step, issue_fixture_unwrap), us);
	Configure(RegisterBenchmark("step/sign_evp_digestsign/rsa-2048", SignDigestSign), us);
	Configure(RegisterBenchmark("step/wrap_oaep/rsa-2048", Step, issue_fixture_wrap), us);
	Configure(RegisterBenchmark("step/spki_decode/rsa-2048", Step, issue_fixture_decode_public_key), us);
	Configure(RegisterBenchmark("step/rac_read", Step, RacRead), us);
	Configure(RegisterBenchmark("step/rac_read_verify", Step, RacReadVerify), us);
	Configure(RegisterBenchmark("step/pl_parse_read", Step, issue_fixture_pl_read), us);
	Configure(RegisterBenchmark("step/use_license_build", Step, UseLicenseBuild), us);
	Configure(RegisterBenchmark("step/use_license_build_serialize", Step, UseLicenseBuildSerialize), us);
	Configure(RegisterBenchmark(
		      ("step/policy_evaluate/grants:" + std::to_string(ISSUE_FIXTURE_POLICY_GRANTS)).c_str(),
		      Step, issue_fixture_policy_evaluate),
		  benchmark::kNanosecond);
	for (size_t w = 0; w < sizeof kWorkerCounts / sizeof kWorkerCounts[0]; w++) {
		Configure(RegisterBenchmark("ceiling/evp_pkey_sign/rsa-2048", CeilingPkeySign), us)
		    ->Threads(static_cast<int>(kWorkerCounts[w]))
		    ->UseRealTime();
		for (int hot = 0; hot <= 1; hot++) {
			EngineSetup *setup = &engines[hot][w];
			const std::string name = std::string("engine_issue/") + (hot ? "hot" : "cold") +
						 "/workers:" + std::to_string(setup->workers);
			Configure(RegisterBenchmark(name.c_str(), EngineIssue, setup),
				  benchmark::kMillisecond)
			    ->Threads(static_cast<int>(setup->workers * kSubmittersPerWorker))
			    ->MinTime(2.0)
			    ->UseRealTime();
		}
	}
}

void FreeAll()
{
	for (auto &by_mode : engines)
		for (EngineSetup &setup : by_mode)
			lic_engine_free(setup.engine);
	for (EVP_PKEY *key : thread_keys)
		EVP_PKEY_free(key);
	issue_fixture_free(fixture);
	fixture = nullptr;
}

// Builds the fixture, the per-thread keys and the four engines.
bool SetUp()
{
	lic_error error{};
	std::fprintf(stderr, "bench: building the issuance fixture (%zu PLs)…\n", kColdPlCount);
	if (issue_fixture_new(kColdPlCount, &fixture, &error) != LIC_OK) {
		std::fprintf(stderr, "bench: %s\n", Describe(error).c_str());
		return false;
	}
	for (unsigned i = 0; i < kWorkerCounts[sizeof kWorkerCounts / sizeof kWorkerCounts[0] - 1]; i++) {
		EVP_PKEY *key = nullptr;
		if (issue_fixture_private_key(fixture, &key, &error) != LIC_OK) {
			std::fprintf(stderr, "bench: %s\n", Describe(error).c_str());
			return false;
		}
		thread_keys.push_back(key);
	}
	for (int hot = 0; hot <= 1; hot++)
		for (size_t w = 0; w < sizeof kWorkerCounts / sizeof kWorkerCounts[0]; w++)
			if (!MakeEngine(&engines[hot][w], hot != 0, kWorkerCounts[w], &error)) {
				std::fprintf(stderr, "bench: engine (%s, %u workers): %s\n",
					     hot ? "hot" : "cold", kWorkerCounts[w], Describe(error).c_str());
				return false;
			}
	return true;
}

} // namespace

int main(int argc, char **argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	if (!SetUp()) {
		FreeAll();
		return 1;
	}
	RegisterAll();
	benchmark::AddCustomContext("licensor", LIC_VERSION_STRING);
	benchmark::AddCustomContext("openssl", OpenSSL_version(OPENSSL_VERSION));
	benchmark::AddCustomContext("engine_batch", std::to_string(kBatch));
	benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	FreeAll();
	return 0;
}
