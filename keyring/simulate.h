/*
 * simulate.h: the rekey rollout simulator behind `licensor simulate`
 * (DESIGN.md §8, docs/simulate.md).
 *
 * One in-memory tenant is built and changed with the real code paths
 * (tenant_new, lifecycle_rekey, lifecycle_revoke) and every publishing
 * decision is rollout_select_publishing_version at an explicit `now`, so the
 * simulator shows what the engine does, not what a copy of its formula says.
 * Key versions carry stand-in public keys (no RSA generation, no private key):
 * selection and lifecycle never look at key material.
 *
 * Time advances in steps; everything of step k happens at its start time
 * t_k = SIMULATION_EPOCH + k × step. An event (rekey, emergency rekey, revoke)
 * whose time is ≤ t_k is applied before step k publishes anything.
 *
 * Same parameters (seed included) → same results, bit for bit: one xoshiro256**
 * stream, clients visited in order, no floating point in any decision but the
 * ones the stream drives with the same operations each run.
 *
 * Ownership: simulation_new returns an object freed by simulation_free
 * (NULL is a no-op); step results point into it and live until the next step.
 */
#ifndef LICENSOR_KEYRING_SIMULATE_H
#define LICENSOR_KEYRING_SIMULATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "licensor.h"

/* 2026-01-01T00:00:00Z: the simulated clock starts here. */
#define SIMULATION_EPOCH 1767225600LL
#define SIMULATION_TENANT "simulated"
#define SIMULATION_CLIENTS_MAX 1000000u
#define SIMULATION_DAYS_MAX 3650
#define SIMULATION_STEPS_MAX 100000
/* Bounded work: clients × steps and clients × days (≈ items published). */
#define SIMULATION_CLIENT_STEPS_MAX 400000000LL
#define SIMULATION_CLIENT_DAYS_MAX 200000000LL
/* Version 1, the routine rekey's version, the emergency rekey's version. */
#define SIMULATION_VERSIONS_MAX 3
/* License requests per client per day, spread uniformly over all content published so far. */
#define SIMULATION_REQUESTS_PER_CLIENT_PER_DAY 2

struct simulation_parameters {
	uint32_t clients;
	double legacy_share;       /* 0..1 */
	int64_t legacy_clear_s;    /* legacy clients refresh their cached key this long after a rekey */
	int64_t duration_s;        /* --days */
	int64_t rekey_at_s;        /* from the start */
	int64_t rollout_s;         /* the routine rekey's rollout */
	int64_t step_s;            /* --step */
	uint64_t seed;             /* --seed */
	int64_t emergency_rekey_s; /* -1: none; else --immediate --reason compromised then */
	int64_t revoke_old_s;      /* -1: none; else version 1 is revoked then */
};

/* The defaults of the command line (docs/simulate.md). */
void simulation_parameters_default(struct simulation_parameters *parameters);

/* LIC_USAGE with a sentence when a parameter is out of range or the run is too big. */
lic_status simulation_parameters_check(const struct simulation_parameters *parameters, lic_error *error);

struct simulation_step_result {
	uint64_t step;
	int64_t now;
	uint32_t version_count;                          /* versions that exist now */
	uint64_t published[SIMULATION_VERSIONS_MAX + 1]; /* this step, by version (1-based) */
	uint64_t publish_failures;                       /* no version to publish to */
	uint64_t content[SIMULATION_VERSIONS_MAX + 1];   /* all content so far, by version */
	uint64_t licenses[SIMULATION_VERSIONS_MAX + 1];  /* served this step, by content version */
	uint64_t licenses_compromised;                   /* of which a compromised version unwrapped */
	uint64_t failures_revoked, failures_destroyed, failures_no_signing; /* this step */
	uint32_t threshold;                                                 /* rollout_threshold at now */
};

struct simulation;

lic_status simulation_new(const struct simulation_parameters *parameters, struct simulation **out,
			  lic_error *error);
void simulation_free(struct simulation *simulation);

uint64_t simulation_step_count(const struct simulation *simulation);
/* Runs the next step. LIC_STATE when all steps are done. */
lic_status simulation_step(struct simulation *simulation, const struct simulation_step_result **out,
			   lic_error *error);

/* Per client, for tests: its id, whether it is legacy, and what it published in the last step. */
const char *simulation_client_id(const struct simulation *simulation, uint32_t index);
bool simulation_client_is_legacy(const struct simulation *simulation, uint32_t index);
uint32_t simulation_client_published(const struct simulation *simulation, uint32_t index);
/* The tenant being simulated (read only). */
const struct tenant *simulation_tenant(const struct simulation *simulation);

/* CSV: one header line, then one line per step (docs/simulate.md lists the columns). */
void simulation_write_csv_header(FILE *out);
void simulation_write_csv_row(FILE *out, const struct simulation_step_result *result);
/* The JSON summary of DESIGN.md §8 over the steps run so far, one object and a newline. */
void simulation_write_summary_json(FILE *out, const struct simulation *simulation);

#endif
