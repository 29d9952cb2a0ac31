/*
 * control_worker.c: see control_worker.h.
 *
 * Every handler works inside a keyring read section on the current snapshot,
 * exactly as the engine does, so a rekey or revoke made by another process is
 * seen by the next request after the snapshot swap.
 */
#include "io/control_worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "core/documents.h"
#include "keyring/error.h"
#include "keyring/json_output.h"
#include "keyring/key_material.h"
#include "keyring/snapshot.h"
#include "keyring/store.h"

struct control_worker {
	lic_keyring *keyring;
	struct completion_queue *completions;
	size_t queue_max, queued;
	struct control_request *head, *tail;
	bool stopping;
	pthread_mutex_t lock;
	pthread_cond_t ready;
	pthread_t thread;
};

void control_request_free(struct control_request *request)
{
	if (request == NULL)
		return;
	free(request->client_id);
	free(request->principal);
	free(request->body);
	free(request);
}

/* The tenant, usable for these requests: present and not disabled. */
static lic_status usable_tenant(lic_keyring *keyring, const char *name, const struct tenant **out,
				lic_error *error)
{
	lic_status status = keyring_snapshot_tenant(keyring, keyring_current(keyring), name, out, error);
	if (status == LIC_OK && (*out)->disabled)
		return lic_error_set(error, LIC_TENANT_DISABLED, "tenant %s is disabled", name);
	return status;
}

static lic_status answer_publishing_key(struct control_worker *worker, struct control_request *request,
					lic_error *error)
{
	lic_status status = LIC_OK;
	char *pem = NULL;
	const struct tenant *tenant = NULL;
	int64_t now = lic_clock_now(keyring_clock(worker->keyring));
	LIC_TRY(usable_tenant(worker->keyring, request->tenant, &tenant, error));
	const struct key_version *version =
	    rollout_select_publishing_version(tenant, request->client_id, now);
	if (version == NULL)
		LIC_FAIL(error, LIC_KEY_REVOKED, "tenant %s has no active version to publish to",
			 request->tenant);
	LIC_TRY(key_material_public_pem(version->public_key_der, version->public_key_length, &pem, error));
	char headers[128];
	snprintf(headers, sizeof headers, "X-Key-Id: %s\r\nX-Key-Version: %u\r\n", version->key_id_hex,
		 version->number);
	if (!response_set(request->response, 200, "application/x-pem-file", headers, pem, strlen(pem)))
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
out:
	free(pem);
	return status;
}

static lic_status answer_keys(struct control_worker *worker, struct control_request *request,
			      lic_error *error)
{
	lic_status status = LIC_OK;
	char *json = NULL;
	size_t length = 0;
	const struct tenant *tenant = NULL;
	LIC_TRY(keyring_snapshot_tenant(worker->keyring, keyring_current(worker->keyring), request->tenant,
					&tenant, error));
	FILE *out = open_memstream(&json, &length);
	if (out == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	json_tenant_versions(out, tenant, lic_clock_now(keyring_clock(worker->keyring)));
	fputc('\n', out);
	if (fclose(out) != 0)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	if (!response_set(request->response, 200, "application/json", NULL, json, length))
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
out:
	free(json);
	return status;
}

static lic_status answer_certify(struct control_worker *worker, struct control_request *request,
				 lic_error *error)
{
	lic_status status = LIC_OK;
	EVP_PKEY *user_key = NULL;
	struct version_key *signing_key = NULL;
	char *xml = NULL;
	size_t length = 0;
	const struct tenant *tenant = NULL;
	BIO *bio = BIO_new_mem_buf(request->body, (int)request->body_length);
	if (bio == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	user_key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (user_key == NULL || EVP_PKEY_get_base_id(user_key) != EVP_PKEY_RSA)
		LIC_FAIL(error, LIC_MALFORMED,
			 "the body must be the user's RSA public key, PEM (SubjectPublicKeyInfo)");
	LIC_TRY(usable_tenant(worker->keyring, request->tenant, &tenant, error));
	int64_t now = lic_clock_now(keyring_clock(worker->keyring));
	const struct key_version *signing = tenant_signing_version(tenant, now);
	if (signing == NULL)
		LIC_FAIL(error, LIC_KEY_REVOKED, "tenant %s has no active version to sign with",
			 request->tenant);
	LIC_TRY(version_key_open(keyring_store(worker->keyring)->kek, tenant->name, signing, &signing_key,
				 error));
	LIC_TRY(rights_account_certificate_write(tenant->name, request->principal, user_key, now,
						 now + (int64_t)request->days * 86400, signing_key,
						 signing->key_id_hex, &xml, &length, error));
	if (!response_set(request->response, 200, "application/xml", NULL, xml, length))
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
out:
	BIO_free(bio);
	EVP_PKEY_free(user_key);
	version_key_free(signing_key);
	free(xml);
	return status;
}

static void handle(struct control_worker *worker, struct control_request *request)
{
	lic_error error = {0};
	lic_status status;
	keyring_read_enter();
	switch (request->kind) {
	case CONTROL_PUBLISHING_KEY:
		status = answer_publishing_key(worker, request, &error);
		break;
	case CONTROL_CERTIFY:
		status = answer_certify(worker, request, &error);
		break;
	case CONTROL_KEYS:
		status = answer_keys(worker, request, &error);
		break;
	default:
		status = lic_error_set(&error, LIC_INTERNAL, "unknown control request");
		break;
	}
	keyring_read_leave();
	if (status == LIC_INTERNAL) {
		/* Control requests are rare (certify, keys): every one is logged. */
		fprintf(stderr, "licensor: INTERNAL: %s\n", error.message);
		lic_error_set(&error, LIC_INTERNAL, "internal error (the server log has the detail)");
	}
	if (status != LIC_OK && !response_set_error(request->response, status, 0, error.message, NULL))
		request->response->ready = false; /* the I/O thread closes the connection */
	completion_queue_push(worker->completions, request->response);
	control_request_free(request);
}

static void *control_worker_main(void *argument)
{
	struct control_worker *worker = argument;
	pthread_mutex_lock(&worker->lock);
	for (;;) {
		while (worker->head == NULL && !worker->stopping)
			pthread_cond_wait(&worker->ready, &worker->lock);
		struct control_request *request = worker->head;
		if (request == NULL)
			break; /* stopping and drained */
		worker->head = request->next;
		if (worker->head == NULL)
			worker->tail = NULL;
		worker->queued--;
		pthread_mutex_unlock(&worker->lock);
		handle(worker, request);
		pthread_mutex_lock(&worker->lock);
	}
	pthread_mutex_unlock(&worker->lock);
	return NULL;
}

lic_status control_worker_new(lic_keyring *keyring, struct completion_queue *completions, size_t queue_max,
			      struct control_worker **out, lic_error *error)
{
	struct control_worker *worker = calloc(1, sizeof *worker);
	if (worker == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	worker->keyring = keyring;
	worker->completions = completions;
	worker->queue_max = queue_max ? queue_max : 256;
	pthread_mutex_init(&worker->lock, NULL);
	pthread_cond_init(&worker->ready, NULL);
	if (pthread_create(&worker->thread, NULL, control_worker_main, worker) != 0) {
		pthread_mutex_destroy(&worker->lock);
		pthread_cond_destroy(&worker->ready);
		free(worker);
		return lic_error_set(error, LIC_INTERNAL, "cannot start the control thread");
	}
	*out = worker;
	return LIC_OK;
}

lic_status control_worker_submit(struct control_worker *worker, struct control_request *request)
{
	pthread_mutex_lock(&worker->lock);
	if (worker->stopping || worker->queued >= worker->queue_max) {
		pthread_mutex_unlock(&worker->lock);
		return LIC_OVERLOADED;
	}
	request->next = NULL;
	if (worker->tail)
		worker->tail->next = request;
	else
		worker->head = request;
	worker->tail = request;
	worker->queued++;
	pthread_cond_signal(&worker->ready);
	pthread_mutex_unlock(&worker->lock);
	return LIC_OK;
}

void control_worker_free(struct control_worker *worker)
{
	if (worker == NULL)
		return;
	pthread_mutex_lock(&worker->lock);
	worker->stopping = true;
	pthread_cond_signal(&worker->ready);
	pthread_mutex_unlock(&worker->lock);
	pthread_join(worker->thread, NULL);
	pthread_mutex_destroy(&worker->lock);
	pthread_cond_destroy(&worker->ready);
	free(worker);
}
