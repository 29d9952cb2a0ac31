/*
 * xml_document.c: the hardened libxml2 entry point and the element and
 * attribute helpers that the store, world and (later) license formats share.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "encoding.h"
#include "error.h"
#include "utc_time.h"
#include "xml_document.h"

lic_status xml_document_parse(const char *data, size_t length, size_t max_length, xmlDocPtr *out,
			      lic_error *error)
{
	if (length > max_length)
		return lic_error_set(error, LIC_TOO_LARGE, "document is larger than %zu bytes", max_length);
	if (length > INT32_MAX)
		return lic_error_set(error, LIC_TOO_LARGE, "document is too large");
	/* No NOENT (no entity substitution), no DTDLOAD/DTDATTR, no network, no
	 * messages on stderr; libxml2's default depth and size limits stay on
	 * (no XML_PARSE_HUGE). */
	int options = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
	xmlDocPtr document = xmlReadMemory(data, (int)length, NULL, NULL, options);
	if (document == NULL) {
		const xmlError *last = xmlGetLastError();
		int line = last ? last->line : 0;
		xmlResetLastError();
		return lic_error_set(error, LIC_MALFORMED, "not well-formed XML (line %d)", line);
	}
	if (document->intSubset != NULL || document->extSubset != NULL) {
		xmlFreeDoc(document);
		return lic_error_set(error, LIC_MALFORMED, "document type declarations are not accepted");
	}
	*out = document;
	return LIC_OK;
}

static bool in_namespace(xmlNodePtr node)
{
	return node->ns != NULL && node->ns->href != NULL &&
	       strcmp((const char *)node->ns->href, LICENSOR_NAMESPACE) == 0;
}

lic_status xml_document_root(xmlDocPtr document, const char *name, xmlNodePtr *out, lic_error *error)
{
	xmlNodePtr root = xmlDocGetRootElement(document);
	if (root == NULL || strcmp((const char *)root->name, name) != 0 || !in_namespace(root))
		return lic_error_set(error, LIC_MALFORMED, "expected a %s element in namespace %s", name,
				     LICENSOR_NAMESPACE);
	*out = root;
	return LIC_OK;
}

lic_status xml_child(xmlNodePtr parent, const char *name, bool optional, xmlNodePtr *out, lic_error *error)
{
	xmlNodePtr found = NULL;
	for (xmlNodePtr child = parent->children; child != NULL; child = child->next) {
		if (child->type != XML_ELEMENT_NODE || strcmp((const char *)child->name, name) != 0)
			continue;
		if (!in_namespace(child))
			return lic_error_set(error, LIC_MALFORMED, "element %s is in the wrong namespace",
					     name);
		if (found != NULL)
			return lic_error_set(error, LIC_MALFORMED, "element %s appears twice in %s", name,
					     (const char *)parent->name);
		found = child;
	}
	if (found == NULL && !optional)
		return lic_error_set(error, LIC_MALFORMED, "element %s is missing from %s", name,
				     (const char *)parent->name);
	*out = found;
	return LIC_OK;
}

lic_status xml_text(xmlNodePtr node, char **out, lic_error *error)
{
	for (xmlNodePtr child = node->children; child != NULL; child = child->next)
		if (child->type == XML_ELEMENT_NODE)
			return lic_error_set(error, LIC_MALFORMED, "element %s must hold text only",
					     (const char *)node->name);
	xmlChar *text = xmlNodeGetContent(node);
	if (text == NULL)
		text = xmlStrdup((const xmlChar *)"");
	if (text == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	*out = (char *)text;
	return LIC_OK;
}

lic_status xml_attribute(xmlNodePtr node, const char *name, bool optional, char **out, lic_error *error)
{
	xmlChar *value = xmlGetNoNsProp(node, (const xmlChar *)name);
	if (value == NULL && !optional)
		return lic_error_set(error, LIC_MALFORMED, "attribute %s is missing from %s", name,
				     (const char *)node->name);
	*out = (char *)value;
	return LIC_OK;
}

lic_status xml_attribute_u64(xmlNodePtr node, const char *name, bool optional, uint64_t maximum,
			     uint64_t *out, lic_error *error)
{
	char *text = NULL;
	lic_status status = xml_attribute(node, name, optional, &text, error);
	if (status != LIC_OK || text == NULL)
		return status;
	uint64_t value = 0;
	size_t length = strlen(text);
	bool ok = length > 0 && length <= 20;
	for (size_t i = 0; ok && i < length; i++) {
		if (text[i] < '0' || text[i] > '9' || value > (UINT64_MAX - 9) / 10)
			ok = false;
		else
			value = value * 10 + (uint64_t)(text[i] - '0');
	}
	xmlFree(text);
	if (!ok || value > maximum)
		return lic_error_set(error, LIC_MALFORMED,
				     "attribute %s of %s is not a number up to %" PRIu64, name,
				     (const char *)node->name, maximum);
	*out = value;
	return LIC_OK;
}

lic_status xml_attribute_time(xmlNodePtr node, const char *name, bool optional, int64_t *out,
			      lic_error *error)
{
	char *text = NULL;
	lic_status status = xml_attribute(node, name, optional, &text, error);
	if (status != LIC_OK || text == NULL)
		return status;
	status = utc_time_parse(text, out, error);
	xmlFree(text);
	if (status != LIC_OK)
		return lic_error_set(error, LIC_MALFORMED, "attribute %s of %s is not a UTC time", name,
				     (const char *)node->name);
	return LIC_OK;
}

lic_status xml_attribute_bool(xmlNodePtr node, const char *name, bool optional, bool *out, lic_error *error)
{
	char *text = NULL;
	lic_status status = xml_attribute(node, name, optional, &text, error);
	if (status != LIC_OK || text == NULL)
		return status;
	bool ok = true;
	if (strcmp(text, "true") == 0)
		*out = true;
	else if (strcmp(text, "false") == 0)
		*out = false;
	else
		ok = false;
	xmlFree(text);
	if (!ok)
		return lic_error_set(error, LIC_MALFORMED, "attribute %s of %s must be true or false", name,
				     (const char *)node->name);
	return LIC_OK;
}

lic_status xml_child_base64(xmlNodePtr parent, const char *name, bool optional, uint8_t **out, size_t *length,
			    lic_error *error)
{
	xmlNodePtr child = NULL;
	char *text = NULL;
	lic_status status = xml_child(parent, name, optional, &child, error);
	if (status != LIC_OK)
		return status;
	if (child == NULL) {
		*out = NULL;
		*length = 0;
		return LIC_OK;
	}
	status = xml_text(child, &text, error);
	if (status != LIC_OK)
		return status;
	status = base64_decode(text, strlen(text), out, length, error);
	xmlFree(text);
	if (status == LIC_MALFORMED)
		return lic_error_set(error, LIC_MALFORMED, "element %s holds bad base64", name);
	return status;
}

lic_status xml_set_attribute(xmlNodePtr node, const char *name, const char *value, lic_error *error)
{
	if (xmlSetProp(node, (const xmlChar *)name, (const xmlChar *)value) == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	return LIC_OK;
}

lic_status xml_set_attribute_u64(xmlNodePtr node, const char *name, uint64_t value, lic_error *error)
{
	char text[24];
	snprintf(text, sizeof text, "%" PRIu64, value);
	return xml_set_attribute(node, name, text, error);
}

lic_status xml_set_attribute_time(xmlNodePtr node, const char *name, int64_t value, lic_error *error)
{
	char text[UTC_TIME_LENGTH];
	utc_time_format(value, text);
	return xml_set_attribute(node, name, text, error);
}

lic_status xml_add_text_child(xmlNodePtr parent, const char *name, const char *text, xmlNodePtr *out,
			      lic_error *error)
{
	xmlNodePtr child = xmlNewTextChild(parent, parent->ns, (const xmlChar *)name, (const xmlChar *)text);
	if (child == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	if (out != NULL)
		*out = child;
	return LIC_OK;
}

lic_status xml_add_base64_child(xmlNodePtr parent, const char *name, const uint8_t *data, size_t length,
				xmlNodePtr *out, lic_error *error)
{
	char *text = base64_encode(data, length);
	if (text == NULL)
		return lic_error_set(error, LIC_INTERNAL, "out of memory");
	lic_status status = xml_add_text_child(parent, name, text, out, error);
	free(text);
	return status;
}

lic_status xml_document_serialize(xmlDocPtr document, xmlChar **out, int *length, lic_error *error)
{
	xmlDocDumpFormatMemoryEnc(document, out, length, "UTF-8", 1);
	if (*out == NULL)
		return lic_error_set(error, LIC_INTERNAL, "cannot serialise XML");
	return LIC_OK;
}
