/*
 * tenant_file.c: reading and writing tenants/<name>.xml. The reader trusts
 * nothing: names, numbers, states, key ids and the invariants of tenant.h are
 * all checked, so a damaged file is refused whole.
 */
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "encoding.h"
#include "error.h"
#include "tenant_file.h"
#include "utc_time.h"
#include "xml_document.h"

size_t tenant_private_key_aad(const char *tenant, uint32_t version, const uint8_t key_id[KEY_ID_LENGTH],
			      uint8_t out[TENANT_NAME_MAX + 1 + 4 + KEY_ID_LENGTH])
{
	size_t length = strnlen(tenant, TENANT_NAME_MAX);
	memcpy(out, tenant, length);
	out[length++] = 0;
	out[length++] = (uint8_t)(version >> 24);
	out[length++] = (uint8_t)(version >> 16);
	out[length++] = (uint8_t)(version >> 8);
	out[length++] = (uint8_t)version;
	memcpy(out + length, key_id, KEY_ID_LENGTH);
	return length + KEY_ID_LENGTH;
}

static const char *const state_names[] = {"pending", "active", "retained", "revoked", "destroyed"};
static const char *const outcome_names[] = {"none", "running", "completed", "aborted", "superseded"};

static lic_status parse_enum(xmlNodePtr node, const char *attribute, const char *const *names, size_t count,
			     int *out, lic_error *error)
{
	char *text = NULL;
	lic_status status = xml_attribute(node, attribute, false, &text, error);
	if (status != LIC_OK)
		return status;
	for (size_t i = 0; i < count; i++) {
		if (strcmp(text, names[i]) == 0) {
			*out = (int)i;
			xmlFree(text);
			return LIC_OK;
		}
	}
	xmlFree(text);
	return lic_error_set(error, LIC_MALFORMED, "attribute %s of %s has an unknown value", attribute,
			     (const char *)node->name);
}

static lic_status parse_version(xmlNodePtr node, struct tenant *tenant, lic_error *error)
{
	lic_status status = LIC_OK;
	struct key_version version;
	memset(&version, 0, sizeof version);
	char *text = NULL;
	uint64_t number = 0;
	int value = 0;
	bool appended = false;

	LIC_TRY(xml_attribute_u64(node, "Number", false, TENANT_VERSION_MAX, &number, error));
	if (number != tenant->version_count + 1)
		LIC_FAIL(error, LIC_MALFORMED, "tenant %s: version %u follows version %zu", tenant->name,
			 (unsigned)number, tenant->version_count);
	LIC_TRY(xml_attribute(node, "Algorithm", false, &text, error));
	LIC_TRY(key_algorithm_parse(text, true, &version.algorithm, error));
	xmlFree(text);
	text = NULL;
	LIC_TRY(xml_attribute(node, "Origin", false, &text, error));
	if (strcmp(text, "managed") == 0)
		version.origin = KEY_ORIGIN_MANAGED;
	else if (strcmp(text, "byok") == 0)
		version.origin = KEY_ORIGIN_BYOK;
	else
		LIC_FAIL(error, LIC_MALFORMED, "tenant %s version %u: unknown origin", tenant->name,
			 (unsigned)number);
	xmlFree(text);
	text = NULL;
	LIC_TRY(parse_enum(node, "State", state_names, 5, &value, error));
	version.state = (lic_key_state)value;
	LIC_TRY(parse_enum(node, "StateBeforeRevoke", state_names, 5, &value, error));
	version.state_before_revoke = (lic_key_state)value;
	LIC_TRY(xml_attribute_bool(node, "Compromised", false, &version.compromised, error));
	LIC_TRY(xml_attribute_time(node, "CreatedAt", false, &version.created_at, error));
	LIC_TRY(xml_attribute_time(node, "ActivatedAt", true, &version.activated_at, error));
	LIC_TRY(xml_attribute_time(node, "RetainedAt", true, &version.retained_at, error));
	LIC_TRY(xml_attribute_time(node, "RevokedAt", true, &version.revoked_at, error));
	LIC_TRY(xml_attribute_time(node, "ReinstatedAt", true, &version.reinstated_at, error));
	LIC_TRY(xml_attribute_time(node, "DestroyedAt", true, &version.destroyed_at, error));
	LIC_TRY(xml_attribute_time(node, "CompromisedAt", true, &version.compromised_at, error));

	for (xmlNodePtr child = node->children; child != NULL; child = child->next) {
		if (child->type != XML_ELEMENT_NODE)
			continue;
		const char *child_name = (const char *)child->name;
		if (strcmp(child_name, "PublicKey") != 0 && strcmp(child_name, "SealedPrivateKey") != 0 &&
		    strcmp(child_name, "Pkcs11Uri") != 0)
			LIC_FAIL(error, LIC_MALFORMED, "tenant %s version %u: unexpected element %.32s",
				 tenant->name, (unsigned)number, child_name);
	}
	LIC_TRY(xml_child_base64(node, "PublicKey", false, &version.public_key_der,
				 &version.public_key_length, error));
	LIC_TRY(xml_child_base64(node, "SealedPrivateKey", true, &version.sealed_private_key,
				 &version.sealed_private_key_length, error));
	xmlNodePtr uri = NULL;
	LIC_TRY(xml_child(node, "Pkcs11Uri", true, &uri, error));
	if (uri != NULL) {
		LIC_TRY(xml_text(uri, &text, error));
		version.byok_uri = strdup(text);
		xmlFree(text);
		text = NULL;
		if (version.byok_uri == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	}

	/* The key id is derived, never trusted: it must be the hash of the public key. */
	key_id_of_spki(version.public_key_der, version.public_key_length, version.key_id);
	LIC_TRY(xml_attribute(node, "KeyId", false, &text, error));
	char derived[KEY_ID_HEX_LENGTH];
	hex_encode(version.key_id, KEY_ID_LENGTH, derived);
	if (strcmp(text, derived) != 0)
		LIC_FAIL(error, LIC_MALFORMED,
			 "tenant %s version %u: KeyId is not the hash of its public key", tenant->name,
			 (unsigned)number);
	xmlFree(text);
	text = NULL;

	bool has_private = version.sealed_private_key != NULL;
	if (version.state == LIC_KEY_STATE_DESTROYED && has_private)
		LIC_FAIL(error, LIC_MALFORMED,
			 "tenant %s version %u is destroyed but still holds a private key", tenant->name,
			 (unsigned)number);
	if (version.state != LIC_KEY_STATE_DESTROYED && version.origin == KEY_ORIGIN_MANAGED && !has_private)
		LIC_FAIL(error, LIC_MALFORMED, "tenant %s version %u has no private key", tenant->name,
			 (unsigned)number);
	if (version.origin == KEY_ORIGIN_BYOK && version.byok_uri == NULL)
		LIC_FAIL(error, LIC_MALFORMED, "tenant %s version %u is BYOK without a PKCS#11 URI",
			 tenant->name, (unsigned)number);
	if (version.compromised &&
	    (version.state == LIC_KEY_STATE_ACTIVE || version.state == LIC_KEY_STATE_PENDING))
		LIC_FAIL(error, LIC_MALFORMED, "tenant %s version %u is compromised and %s", tenant->name,
			 (unsigned)number, state_names[version.state]);
	LIC_TRY(tenant_push_version(tenant, &version, error)); /* indexed once, at the end */
	appended = true;
out:
	xmlFree(text);
	if (!appended) {
		free(version.public_key_der);
		free(version.sealed_private_key);
		free(version.byok_uri);
	}
	return status;
}

static lic_status parse_rollout(xmlNodePtr node, struct tenant *tenant, lic_error *error)
{
	lic_status status = LIC_OK;
	struct tenant_rollout *rollout = &tenant->rollout;
	int outcome = 0;
	uint64_t from = 0, to = 0, duration = 0;
	LIC_TRY(parse_enum(node, "Outcome", outcome_names, 5, &outcome, error));
	rollout->outcome = (enum rollout_outcome)outcome;
	LIC_TRY(xml_attribute_u64(node, "FromVersion", false, tenant->version_count, &from, error));
	LIC_TRY(xml_attribute_u64(node, "ToVersion", false, tenant->version_count, &to, error));
	LIC_TRY(xml_attribute_time(node, "StartedAt", false, &rollout->started_at, error));
	LIC_TRY(xml_attribute_u64(node, "DurationSeconds", false, DURATION_MAX_SECONDS, &duration, error));
	LIC_TRY(xml_attribute_time(node, "EndedAt", true, &rollout->ended_at, error));
	if (to == 0 || from >= to)
		LIC_FAIL(error, LIC_MALFORMED, "tenant %s: rollout from %u to %u is impossible", tenant->name,
			 (unsigned)from, (unsigned)to);
	rollout->from_version = (uint32_t)from;
	rollout->to_version = (uint32_t)to;
	rollout->duration_s = (int64_t)duration;
out:
	return status;
}

static lic_status check_invariants(const struct tenant *tenant, lic_error *error)
{
	size_t active = 0;
	for (size_t i = 0; i < tenant->version_count; i++)
		active += tenant->versions[i].state == LIC_KEY_STATE_ACTIVE;
	const struct tenant_rollout *rollout = &tenant->rollout;
	bool running = rollout->outcome == ROLLOUT_RUNNING;
	if (active > 2 || (active == 2 && !running))
		return lic_error_set(error, LIC_MALFORMED, "tenant %s has %zu active versions", tenant->name,
				     active);
	if (active == 2) {
		const struct key_version *from = tenant_version(tenant, rollout->from_version);
		const struct key_version *to = tenant_version(tenant, rollout->to_version);
		if (from == NULL || to == NULL || from->state != LIC_KEY_STATE_ACTIVE ||
		    to->state != LIC_KEY_STATE_ACTIVE)
			return lic_error_set(error, LIC_MALFORMED,
					     "tenant %s has two active versions outside its rollout",
					     tenant->name);
	}
	return LIC_OK;
}

lic_status tenant_file_parse(const char *data, size_t length, const char *expected_name, struct tenant **out,
			     lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = NULL;
	struct tenant *tenant = NULL;
	char *name = NULL;
	uint64_t format = 0, revision = 0;
	int64_t created_at = 0;
	xmlNodePtr root = NULL;

	LIC_TRY(xml_document_parse(data, length, TENANT_FILE_MAX_BYTES, &document, error));
	LIC_TRY(xml_document_root(document, "Tenant", &root, error));
	LIC_TRY(xml_attribute_u64(root, "Format", false, UINT32_MAX, &format, error));
	if (format != 1)
		LIC_FAIL(error, LIC_UNSUPPORTED_VERSION, "tenant file format %u is not supported",
			 (unsigned)format);
	LIC_TRY(xml_attribute(root, "Name", false, &name, error));
	if (!tenant_name_valid(name) || (expected_name != NULL && strcmp(name, expected_name) != 0))
		LIC_FAIL(error, LIC_MALFORMED, "tenant file names tenant '%.64s', expected '%.64s'", name,
			 expected_name ? expected_name : "a valid name");
	LIC_TRY(xml_attribute_time(root, "CreatedAt", false, &created_at, error));
	LIC_TRY(xml_attribute_u64(root, "Revision", false, UINT64_MAX, &revision, error));
	tenant = tenant_new(name, created_at);
	if (tenant == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	tenant->revision = revision;
	LIC_TRY(xml_attribute_bool(root, "Disabled", false, &tenant->disabled, error));

	xmlNodePtr rollout = NULL;
	for (xmlNodePtr child = root->children; child != NULL; child = child->next) {
		if (child->type != XML_ELEMENT_NODE)
			continue;
		if (strcmp((const char *)child->name, "SuperUser") == 0) {
			if (tenant->version_count > 0 || rollout != NULL)
				LIC_FAIL(error, LIC_MALFORMED,
					 "tenant %s: SuperUser must come before Version", tenant->name);
			char *address = NULL;
			LIC_TRY(xml_text(child, &address, error));
			status = tenant_add_super_user(tenant, address, error);
			xmlFree(address);
			if (status != LIC_OK)
				LIC_FAIL(error, LIC_MALFORMED, "tenant %s: bad or repeated SuperUser",
					 tenant->name);
		} else if (strcmp((const char *)child->name, "Version") == 0) {
			if (rollout != NULL)
				LIC_FAIL(error, LIC_MALFORMED, "tenant %s: Rollout must follow every Version",
					 tenant->name);
			LIC_TRY(parse_version(child, tenant, error));
		} else if (strcmp((const char *)child->name, "Rollout") == 0) {
			if (rollout != NULL)
				LIC_FAIL(error, LIC_MALFORMED, "tenant %s: two Rollout elements",
					 tenant->name);
			rollout = child;
		} else {
			LIC_FAIL(error, LIC_MALFORMED, "tenant %s: unexpected element %s", tenant->name,
				 (const char *)child->name);
		}
	}
	if (rollout != NULL)
		LIC_TRY(parse_rollout(rollout, tenant, error));
	LIC_TRY(tenant_index_key_ids(tenant, error));
	LIC_TRY(check_invariants(tenant, error));
	*out = tenant;
	tenant = NULL;
out:
	xmlFree(name);
	tenant_free(tenant);
	xmlFreeDoc(document);
	return status;
}

static lic_status set_optional_time(xmlNodePtr node, const char *name, int64_t value, lic_error *error)
{
	return value == 0 ? LIC_OK : xml_set_attribute_time(node, name, value, error);
}

lic_status tenant_file_serialize(const struct tenant *tenant, char **out, size_t *length, lic_error *error)
{
	lic_status status = LIC_OK;
	xmlDocPtr document = xmlNewDoc((const xmlChar *)"1.0");
	xmlNodePtr root = document ? xmlNewNode(NULL, (const xmlChar *)"Tenant") : NULL;
	if (root == NULL)
		LIC_FAIL(error, LIC_INTERNAL, "out of memory");
	xmlDocSetRootElement(document, root);
	xmlSetNs(root, xmlNewNs(root, (const xmlChar *)LICENSOR_NAMESPACE, NULL));
	LIC_TRY(xml_set_attribute(root, "Format", "1", error));
	LIC_TRY(xml_set_attribute(root, "Name", tenant->name, error));
	LIC_TRY(xml_set_attribute(root, "Disabled", tenant->disabled ? "true" : "false", error));
	LIC_TRY(xml_set_attribute_time(root, "CreatedAt", tenant->created_at, error));
	LIC_TRY(xml_set_attribute_u64(root, "Revision", tenant->revision, error));
	for (size_t i = 0; i < tenant->super_user_count; i++)
		LIC_TRY(xml_add_text_child(root, "SuperUser", tenant->super_users[i], NULL, error));
	for (size_t i = 0; i < tenant->version_count; i++) {
		const struct key_version *version = &tenant->versions[i];
		xmlNodePtr node = xmlNewChild(root, root->ns, (const xmlChar *)"Version", NULL);
		if (node == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		LIC_TRY(xml_set_attribute_u64(node, "Number", version->number, error));
		LIC_TRY(xml_set_attribute(node, "KeyId", version->key_id_hex, error));
		LIC_TRY(xml_set_attribute(node, "Algorithm", key_algorithm_name(version->algorithm), error));
		LIC_TRY(xml_set_attribute(node, "Origin",
					  version->origin == KEY_ORIGIN_BYOK ? "byok" : "managed", error));
		LIC_TRY(xml_set_attribute(node, "State", state_names[version->state], error));
		LIC_TRY(xml_set_attribute(node, "StateBeforeRevoke",
					  state_names[version->state_before_revoke], error));
		LIC_TRY(
		    xml_set_attribute(node, "Compromised", version->compromised ? "true" : "false", error));
		LIC_TRY(xml_set_attribute_time(node, "CreatedAt", version->created_at, error));
		LIC_TRY(set_optional_time(node, "ActivatedAt", version->activated_at, error));
		LIC_TRY(set_optional_time(node, "RetainedAt", version->retained_at, error));
		LIC_TRY(set_optional_time(node, "RevokedAt", version->revoked_at, error));
		LIC_TRY(set_optional_time(node, "ReinstatedAt", version->reinstated_at, error));
		LIC_TRY(set_optional_time(node, "DestroyedAt", version->destroyed_at, error));
		LIC_TRY(set_optional_time(node, "CompromisedAt", version->compromised_at, error));
		LIC_TRY(xml_add_base64_child(node, "PublicKey", version->public_key_der,
					     version->public_key_length, NULL, error));
		if (version->sealed_private_key != NULL)
			LIC_TRY(xml_add_base64_child(node, "SealedPrivateKey", version->sealed_private_key,
						     version->sealed_private_key_length, NULL, error));
		if (version->byok_uri != NULL)
			LIC_TRY(xml_add_text_child(node, "Pkcs11Uri", version->byok_uri, NULL, error));
	}
	const struct tenant_rollout *rollout = &tenant->rollout;
	if (rollout->outcome != ROLLOUT_NONE) {
		xmlNodePtr node = xmlNewChild(root, root->ns, (const xmlChar *)"Rollout", NULL);
		if (node == NULL)
			LIC_FAIL(error, LIC_INTERNAL, "out of memory");
		LIC_TRY(xml_set_attribute(node, "Outcome", outcome_names[rollout->outcome], error));
		LIC_TRY(xml_set_attribute_u64(node, "FromVersion", rollout->from_version, error));
		LIC_TRY(xml_set_attribute_u64(node, "ToVersion", rollout->to_version, error));
		LIC_TRY(xml_set_attribute_time(node, "StartedAt", rollout->started_at, error));
		LIC_TRY(xml_set_attribute_u64(node, "DurationSeconds", (uint64_t)rollout->duration_s, error));
		LIC_TRY(set_optional_time(node, "EndedAt", rollout->ended_at, error));
	}
	xmlChar *text = NULL;
	int text_length = 0;
	LIC_TRY(xml_document_serialize(document, &text, &text_length, error));
	*out = (char *)text;
	*length = (size_t)text_length;
out:
	xmlFreeDoc(document);
	return status;
}
