/*
 * control_worker.h: the server's requests that are not license issuance
 * (publishing key, certify, keys), run on one thread of their own.
 *
 * They may read tenant files from disk (a tenant is loaded on first use) and
 * certify signs with the tenant key, so none of them may run on the I/O
 * thread. They are rare next to license requests, so one thread with a
 * bounded queue serves them; a full queue is refused at once (OVERLOADED),
 * like the engine's. Each finished request fills its response and pushes it
 * to the server's completion queue.
 */
#ifndef LICENSOR_IO_CONTROL_WORKER_H
#define LICENSOR_IO_CONTROL_WORKER_H

#include <stddef.h>

#include "io/response.h"
#include "keyring/tenant.h"
#include "licensor.h"

enum control_request_kind {
	CONTROL_PUBLISHING_KEY, /* GET /v1/tenants/{t}/publishing-key?client={id} */
	CONTROL_CERTIFY, /* POST /v1/tenants/{t}/certify?principal=EMAIL[&days=N], body: user public key PEM
			  */
	CONTROL_KEYS,    /* GET /v1/tenants/{t}/keys */
};

struct control_request {
	struct control_request *next;
	enum control_request_kind kind;
	char tenant[TENANT_NAME_MAX + 1];
	char *client_id; /* publishing key: optional */
	char *principal; /* certify */
	unsigned days;   /* certify: 1..3650 */
	char *body;      /* certify: the PEM */
	size_t body_length;
	struct response *response; /* filled, then pushed to the completion queue */
};

/* Frees the request's strings and the request (not the response). */
void control_request_free(struct control_request *request);

struct control_worker;

/* The worker pushes finished responses to `completions`. */
lic_status control_worker_new(lic_keyring *keyring, struct completion_queue *completions, size_t queue_max,
			      struct control_worker **out, lic_error *error);
/* Takes the request on LIC_OK; LIC_OVERLOADED (request untouched) when the
 * queue is full or the worker is stopping. */
lic_status control_worker_submit(struct control_worker *worker, struct control_request *request);
/* Finishes queued requests (their responses are pushed), stops, frees. */
void control_worker_free(struct control_worker *worker);

#endif
