/*
 * xml_document.h: safe reading and small helpers for licensor's XML files
 * (namespace urn:licensor:v1), on libxml2.
 *
 * xml_document_parse never touches the network, never loads or expands a DTD
 * or an external entity (a document with a DOCTYPE is refused outright), caps
 * the size and relies on libxml2's default depth limit, and keeps libxml2 from
 * printing to stderr: a bad document is one MALFORMED sentence.
 */
#ifndef LICENSOR_KEYRING_XML_DOCUMENT_H
#define LICENSOR_KEYRING_XML_DOCUMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>

#include "licensor.h"

#define LICENSOR_NAMESPACE "urn:licensor:v1"

lic_status xml_document_parse(const char *data, size_t length, size_t max_length, xmlDocPtr *out,
			      lic_error *error);

/* Root element, checked to be `name` in licensor's namespace. */
lic_status xml_document_root(xmlDocPtr document, const char *name, xmlNodePtr *out, lic_error *error);

/* The single child element `name` (licensor namespace) of parent. Missing or
 * duplicated → MALFORMED (unless optional, then *out = NULL when missing). */
lic_status xml_child(xmlNodePtr parent, const char *name, bool optional, xmlNodePtr *out, lic_error *error);

/* Text of an element (new string, xmlFree()). */
lic_status xml_text(xmlNodePtr node, char **out, lic_error *error);

/* Attribute helpers; a missing required attribute is MALFORMED. */
lic_status xml_attribute(xmlNodePtr node, const char *name, bool optional, char **out, lic_error *error);
lic_status xml_attribute_u64(xmlNodePtr node, const char *name, bool optional, uint64_t maximum,
			     uint64_t *out, lic_error *error);
lic_status xml_attribute_time(xmlNodePtr node, const char *name, bool optional, int64_t *out,
			      lic_error *error);
lic_status xml_attribute_bool(xmlNodePtr node, const char *name, bool optional, bool *out, lic_error *error);
/* Base64 text of a child element, decoded (new buffer, free()). */
lic_status xml_child_base64(xmlNodePtr parent, const char *name, bool optional, uint8_t **out, size_t *length,
			    lic_error *error);

/* Writers: attributes and children; all return LIC_INTERNAL when out of memory. */
lic_status xml_set_attribute(xmlNodePtr node, const char *name, const char *value, lic_error *error);
lic_status xml_set_attribute_u64(xmlNodePtr node, const char *name, uint64_t value, lic_error *error);
lic_status xml_set_attribute_time(xmlNodePtr node, const char *name, int64_t value, lic_error *error);
lic_status xml_add_text_child(xmlNodePtr parent, const char *name, const char *text, xmlNodePtr *out,
			      lic_error *error);
lic_status xml_add_base64_child(xmlNodePtr parent, const char *name, const uint8_t *data, size_t length,
				xmlNodePtr *out, lic_error *error);

/* Serialises with an XML declaration, indented (new buffer, xmlFree()). */
lic_status xml_document_serialize(xmlDocPtr document, xmlChar **out, int *length, lic_error *error);

#endif
