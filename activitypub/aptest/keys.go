package aptest

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
)

// keyBits is what Mastodon generates for its accounts.
const keyBits = 2048

// keyPool holds the RSA keys of every actor of every Server in the test
// binary. Generating a 2048-bit key takes a second or more under the race
// detector, so each is generated once, when first needed, and the k-th
// actor of every Server gets key k: actors of different Servers may share
// a key, two actors of one Server never do.
//
// This is the package's only mutable state outside a Server, kept
// deliberately: it is a cache of values that never change once made, and
// it lives as long as the test binary.
var keyPool struct {
	mu   sync.Mutex
	keys []*rsa.PrivateKey // append-only, guarded by mu
}

// poolKey returns key i of the pool, generating the keys up to it.
func poolKey(i int) (*rsa.PrivateKey, error) {
	keyPool.mu.Lock()
	defer keyPool.mu.Unlock()
	for len(keyPool.keys) <= i {
		k, err := rsa.GenerateKey(rand.Reader, keyBits)
		if err != nil {
			return nil, fmt.Errorf("generate RSA key: %w", err)
		}
		keyPool.keys = append(keyPool.keys, k)
	}
	return keyPool.keys[i], nil
}

// publicKeyPEM encodes pub as Mastodon serves it in publicKeyPem: PKIX,
// "PUBLIC KEY".
func publicKeyPEM(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		// Marshalling a valid *rsa.PublicKey cannot fail.
		return ""
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// parsePublicKeyPEM reads an RSA public key in either encoding found in
// the fediverse: PKIX ("PUBLIC KEY", Mastodon, GoToSocial) or PKCS #1
// ("RSA PUBLIC KEY", some older servers).
func parsePublicKeyPEM(s string) (*rsa.PublicKey, error) {
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, errors.New("publicKeyPem holds no PEM block")
	}
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("publicKeyPem: %w", err)
		}
		rk, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, fmt.Errorf("publicKeyPem is a %T, not an RSA key", k)
		}
		return rk, nil
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("publicKeyPem: %w", err)
		}
		return k, nil
	default:
		return nil, fmt.Errorf("publicKeyPem is a %q PEM block, want \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"", block.Type)
	}
}
