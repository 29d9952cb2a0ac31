/*
 * xml_signature.h: exclusive C14N and the enveloped XML-DSig signatures of
 * rights account certificates and use licenses (DESIGN.md §2).
 *
 * The one signature shape licensor writes and accepts, so that a stock
 * verifier (`xmlsec1 --verify --pubkey-pem key.pem doc.xml`) accepts it and
 * nothing else slips through (no signature wrapping):
 *
 *   <Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
 *     <SignedInfo>
 *       <CanonicalizationMethod Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
 *       <SignatureMethod Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"/>
 *       <Reference URI="">
 *         <Transforms>
 *           <Transform Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature"/>
 *           <Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>
 *         </Transforms>
 *         <DigestMethod Algorithm="http://www.w3.org/2001/04/xmlenc#sha256"/>
 *         <DigestValue>base64 SHA-256</DigestValue>
 *       </Reference>
 *     </SignedInfo>
 *     <SignatureValue>base64 RSASSA-PKCS1-v1_5 SHA-256</SignatureValue>
 *     <KeyInfo><KeyName>signing key id, 32 hex</KeyName></KeyInfo>
 *   </Signature>
 *
 * It is the last child of the document element. Reference URI="" means the
 * whole document, so what is verified is exactly the document the caller then
 * reads.
 */
#ifndef LICENSOR_CORE_XML_SIGNATURE_H
#define LICENSOR_CORE_XML_SIGNATURE_H

#include <stddef.h>
#include <stdint.h>

#include <libxml/tree.h>
#include <openssl/evp.h>

#include "keyring/version_key.h"
#include "licensor.h"

#define XMLDSIG_NAMESPACE "http://www.w3.org/2000/09/xmldsig#"

/* Exclusive C14N (without comments) of the subtree rooted at `node`, in its
 * document context (in-scope namespaces that the subtree visibly uses are
 * rendered, others not). New buffer (*out, xmlFree()). */
lic_status xml_c14n_subtree(xmlDocPtr document, xmlNodePtr node, xmlChar **out, int *length,
			    lic_error *error);

/* SHA-256 of the exclusive C14N of `node`. */
lic_status xml_c14n_digest(xmlDocPtr document, xmlNodePtr node, uint8_t digest[32], lic_error *error);

/* Appends the Signature above as the last child of the document element,
 * signed with `key` (a managed or token RSA key), KeyName = key_id_hex. The document
 * must not already hold a Signature. */
lic_status xml_signature_sign(xmlDocPtr document, const struct version_key *key, const char *key_id_hex,
			      lic_error *error);

/* Checks the document's Signature: exactly the shape above (any other
 * algorithm, Reference, transform or extra element is refused), last child of
 * the document element, exactly one. Writes the KeyName to key_id_hex (33
 * bytes) so the caller can find the key; then, with `key` (the public key the
 * caller looked up by that id) verifies digest and signature. Two steps so the
 * caller can look the key up in between:
 *   xml_signature_key_name(document, key_id_hex, error);
 *   xml_signature_verify(document, public_key, error);
 * Both return LIC_RAC_INVALID on any fault, with a sentence. */
lic_status xml_signature_key_name(xmlDocPtr document, char key_id_hex[33], lic_error *error);
lic_status xml_signature_verify(xmlDocPtr document, EVP_PKEY *public_key, lic_error *error);

#endif
