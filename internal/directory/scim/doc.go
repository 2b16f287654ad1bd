// Package scim is the SCIM 2.0 (RFC 7643/7644) directory provider.
//
// # Attribute vocabulary
//
// The mapping of an import names SCIM User attributes as follows; Apply
// takes them and List/Lookup return them in this form, so that a user
// written from a row and read back compares equal to the row.
//
//	userName, externalId, displayName, nickName, title, userType,
//	preferredLanguage, locale, timezone      single-valued core attributes
//	name.givenName, name.familyName,
//	name.middleName, name.formatted          sub-attributes of name
//	emails                                   work e-mail addresses, the first
//	                                         is primary
//	phoneNumbers                             work phone numbers, the first
//	                                         is primary
//	urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:<attr>
//	                                         the enterprise extension, with
//	                                         <attr> one of employeeNumber,
//	                                         costCenter, organization,
//	                                         division, department, manager
//	                                         (manager is the id of the
//	                                         manager, manager.value in SCIM)
//
// "active" is not an attribute: the provider sets it on create, deactivate
// and reactivate. Writing emails or phoneNumbers replaces the whole
// multi-valued attribute, e-mails of other types included; reading them
// returns the values of type "work" (or of no type), primary first.
// ValidateAttributes rejects any other name before an import starts.
//
// The identity attribute must be a single-valued core attribute (such as
// userName or externalId): users are looked up by a filter on it, and some
// servers (SCIMMY among them) answer a filter on an extension attribute
// with an empty result instead of an error, which would turn every lookup
// into a create. The managed-user marker must be a single-valued attribute
// of the vocabulary, for example the enterprise organization or userType.
//
// # Protocol
//
// Check reads /ServiceProviderConfig. Lookup filters on the identity
// attribute, several identities per request joined by "or". List pages
// through /Users; with a managed-only scope it filters on the marker and,
// should the server answer that filter with nothing while it holds users,
// lists every user and keeps the marked ones, so a filter the server does
// not understand never reads as "no managed users". Apply sends one /Bulk
// request per batch when the server offers it (split to its limits), else
// one request per change: POST, PATCH with only the changed attributes (GET
// and PUT when PATCH is not offered), DELETE (404 counts as done). A create
// that hits a uniqueness conflict with a managed user of the same identity
// (a row replayed after a resumed import) becomes an update of that user.
//
// Throttling (429), unavailability (502, 503, 504) and network errors are
// retried with exponential backoff and full jitter, honouring Retry-After.
// Attribute values never appear in errors.
package scim
