/*
 * embed_async.c: a licensing server's view of licensor. It drives the
 * asynchronous AcquireLicense API from its own event loop, as a server that
 * embeds the engine would (docs/embedding.md walks through it).
 *
 *   embed_async [--save] STORE REQUEST.xml...
 *
 * Each REQUEST.xml is the body of a POST /v1/licenses (an AcquireLicense
 * document, docs/formats.md). The program submits them all at once; the
 * engine's worker threads issue the licenses and call on_done, which only
 * copies the response and signals an eventfd; the loop below (poll) collects
 * the responses and prints, for each request, the HTTP status and how many
 * UseLicense and Error results it holds. --save also writes each response to
 * REQUEST.xml.response.xml.
 *
 * Build, after `cmake --install`:
 *   cc examples/embed_async.c $(pkg-config --cflags --libs licensor) -o embed_async
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <licensor.h>

/* One request in flight. on_done writes the response fields, then sets
 * `completed` (release); the loop reads them only after seeing `completed`
 * (acquire). Nothing else is shared between the two threads. */
struct request {
	const char *path;
	int completion_fd; /* the loop's eventfd */
	int http_status;
	char *response; /* our copy, NUL-terminated; NULL if the copy failed */
	size_t response_length;
	atomic_bool completed;
	bool reported;
};

/* Runs on an engine worker thread: copy, signal, return. No blocking, no locks. */
static void on_done(void *context, int http_status, const char *response, size_t length)
{
	struct request *request = context;
	request->http_status = http_status;
	request->response = malloc(length + 1); /* the engine's buffer dies when we return */
	if (request->response != NULL) {
		memcpy(request->response, response, length);
		request->response[length] = '\0';
		request->response_length = length;
	}
	atomic_store_explicit(&request->completed, true, memory_order_release);
	uint64_t one = 1;
	while (write(request->completion_fd, &one, sizeof one) < 0 && errno == EINTR)
		;
}

/* The whole file in a new buffer; refuses files over the engine's 1 MiB limit. */
static char *read_file(const char *path, size_t *length)
{
	FILE *file = fopen(path, "rb");
	char *data = file != NULL ? malloc(1024 * 1024 + 1) : NULL;
	size_t used = data != NULL ? fread(data, 1, 1024 * 1024 + 1, file) : 0;
	bool ok = data != NULL && !ferror(file) && used <= 1024 * 1024;
	if (file != NULL)
		fclose(file);
	if (!ok) {
		free(data);
		return NULL;
	}
	*length = used;
	return data;
}

/* How many times `needle` occurs in `text`. Good enough to count the results
 * of a response licensor wrote; a real client parses it (docs/formats.md). */
static size_t occurrences(const char *text, const char *needle)
{
	size_t n = 0;
	for (const char *at = text; (at = strstr(at, needle)) != NULL; at += strlen(needle))
		n++;
	return n;
}

static void report(struct request *request, bool save)
{
	request->reported = true;
	if (request->response == NULL) {
		printf("%s: HTTP %d, response lost (out of memory)\n", request->path, request->http_status);
		return;
	}
	printf("%s: HTTP %d, %zu UseLicense, %zu Error", request->path, request->http_status,
	       occurrences(request->response, "<UseLicense "), occurrences(request->response, "<Error "));
	for (const char *code = request->response; (code = strstr(code, "Code=\"")) != NULL; code += 6)
		printf(" %.*s", (int)strcspn(code + 6, "\""), code + 6);
	printf("\n");
	if (save) {
		char name[4096];
		snprintf(name, sizeof name, "%s.response.xml", request->path);
		FILE *file = fopen(name, "wb");
		size_t written =
		    file != NULL ? fwrite(request->response, 1, request->response_length, file) : 0;
		if (file == NULL || fclose(file) != 0 || written != request->response_length)
			fprintf(stderr, "embed_async: cannot write %s\n", name);
	}
}

int main(int argc, char **argv)
{
	bool save = argc > 1 && strcmp(argv[1], "--save") == 0;
	int first = save ? 2 : 1;
	if (argc - first < 2) {
		fprintf(stderr, "usage: embed_async [--save] STORE REQUEST.xml...\n");
		return 2;
	}
	lic_process_harden(); /* this process will hold decrypted tenant keys */

	int exit_status = 1;
	lic_error error = {0};
	lic_keyring *keyring = NULL;
	lic_engine *engine = NULL;
	size_t request_count = (size_t)(argc - first - 1), outstanding = 0;
	struct request *requests = calloc(request_count, sizeof *requests);
	int completion_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (requests == NULL || completion_fd < 0) {
		perror("embed_async");
		goto out;
	}
	lic_keyring_options keyring_options = {.store_dir = argv[first],
					       .kek_file = getenv("LICENSOR_KEK_FILE")};
	if (lic_keyring_open(&keyring_options, &keyring, &error) != LIC_OK)
		goto fail;
	lic_engine_options engine_options = {.keyring = keyring, .workers = 2};
	if (lic_engine_new(&engine_options, &engine, &error) != LIC_OK)
		goto fail;

	/* Submit everything. A request must be complete before it is submitted:
	 * on_done may run before lic_engine_submit_acquire returns. */
	for (size_t i = 0; i < request_count; i++) {
		struct request *request = &requests[i];
		request->path = argv[first + 1 + (int)i];
		request->completion_fd = completion_fd;
		atomic_init(&request->completed, false);
		size_t body_length = 0;
		char *body = read_file(request->path, &body_length);
		if (body == NULL) {
			fprintf(stderr, "embed_async: cannot read %s (or it is over 1 MiB)\n", request->path);
			request->reported = true;
			continue;
		}
		lic_error refusal = {0};
		lic_status submitted =
		    lic_engine_submit_acquire(engine, body, body_length, on_done, request, &refusal);
		free(body); /* the engine copied it */
		if (submitted == LIC_OK) {
			outstanding++;
		} else { /* refused at once (OVERLOADED, TOO_LARGE): on_done will not run */
			printf("%s: HTTP %d, refused: %s: %s\n", request->path,
			       lic_status_http(refusal.status), lic_status_code(refusal.status),
			       refusal.message);
			request->reported = true;
		}
	}

	/* The event loop: a server would poll its sockets here too. */
	while (outstanding > 0) {
		struct pollfd ready = {.fd = completion_fd, .events = POLLIN};
		int polled = poll(&ready, 1, 60 * 1000);
		if (polled < 0 && errno == EINTR)
			continue;
		if (polled <= 0) {
			fprintf(stderr, "embed_async: no completion within 60 s\n");
			goto out;
		}
		uint64_t signals = 0; /* how many completions since the last read */
		if (read(completion_fd, &signals, sizeof signals) < 0 && errno != EAGAIN)
			goto out;
		for (size_t i = 0; i < request_count; i++) {
			struct request *request = &requests[i];
			if (!request->reported &&
			    atomic_load_explicit(&request->completed, memory_order_acquire)) {
				report(request, save);
				outstanding--;
			}
		}
	}
	lic_engine_stats stats;
	lic_engine_get_stats(engine, &stats);
	printf("licenses issued %llu, items refused %llu, batches %llu\n",
	       (unsigned long long)stats.licenses_issued, (unsigned long long)stats.errors,
	       (unsigned long long)stats.batches);
	exit_status = 0;
	goto out;
fail:
	fprintf(stderr, "embed_async: %s: %s\n", lic_status_code(error.status), error.message);
out:
	lic_engine_free(engine);    /* finishes queued jobs, joins the workers */
	lic_keyring_close(keyring); /* after the engine: it reads the keyring */
	for (size_t i = 0; requests != NULL && i < request_count; i++)
		free(requests[i].response);
	free(requests);
	if (completion_fd >= 0)
		close(completion_fd);
	return exit_status;
}
