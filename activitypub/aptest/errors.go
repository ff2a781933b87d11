package aptest

import "errors"

// Why a request's signature was refused. VerifyRequest wraps one of these
// with the details, so tests of hostile requests can tell with errors.Is
// that a request failed for the reason they meant and not another.
var (
	// ErrUnsigned: the request has no Signature header.
	ErrUnsigned = errors.New("request is not signed")
	// ErrSignatureHeader: the Signature header is malformed, names an
	// algorithm other than rsa-sha256 or hs2019, or does not sign every
	// header that must be signed.
	ErrSignatureHeader = errors.New("bad Signature header")
	// ErrDate: the Date header is missing, unreadable or more than an hour
	// from now.
	ErrDate = errors.New("bad Date header")
	// ErrDigest: the Digest header is missing, unreadable or not the
	// SHA-256 of the body.
	ErrDigest = errors.New("bad Digest header")
	// ErrKey: the key named by keyId could not be fetched or read.
	ErrKey = errors.New("cannot get the signing key")
	// ErrSignature: the signature does not verify with the key.
	ErrSignature = errors.New("signature does not verify")
	// ErrOwner: the key's owner is not the activity's actor.
	ErrOwner = errors.New("key owner is not the activity's actor")
)
