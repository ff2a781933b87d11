package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/starling-live/starling/core/data"
)

// Secret names in the secrets table.
const (
	secretStreamKey     = "stream_key"
	secretAdminPassword = "admin_password_bcrypt"
)

// minSecretLength keeps operators from choosing a guessable stream key or
// admin password: both guard the stream against strangers.
const minSecretLength = 8

// Secrets checks the stream key and the admin password. The stream key is
// stored as given (the streamer reads it back in the admin panel); the admin
// password only as a bcrypt hash.
type Secrets struct {
	store *data.Store

	// mu guards the fields below.
	mu        sync.Mutex
	streamKey []byte
	adminHash []byte
	// adminOK caches the SHA-256 of the last password that passed bcrypt,
	// so that an admin panel polling the API does not pay bcrypt per request.
	adminOK []byte
}

// Generated holds secrets created on this start, to be shown to the
// operator once. Empty fields were not generated.
type Generated struct {
	StreamKey     string
	AdminPassword string
}

// LoadSecrets reads the secrets, replacing them with streamKey and
// adminPassword when those are set, and generating strong random ones when
// none are stored yet.
func LoadSecrets(ctx context.Context, store *data.Store, streamKey, adminPassword string) (*Secrets, Generated, error) {
	var gen Generated
	for _, v := range []struct{ name, value string }{{"stream key", streamKey}, {"admin password", adminPassword}} {
		if v.value != "" && len(v.value) < minSecretLength {
			return nil, gen, fmt.Errorf("the %s is %d characters long: use at least %d", v.name, len(v.value), minSecretLength)
		}
	}
	s := &Secrets{store: store}

	key, err := store.Secret(ctx, secretStreamKey)
	switch {
	case streamKey != "":
		key = streamKey
	case errors.Is(err, data.ErrNotFound):
		key = randomSecret()
		gen.StreamKey = key
	case err != nil:
		return nil, gen, err
	}
	if err := store.SetSecret(ctx, secretStreamKey, key); err != nil {
		return nil, gen, err
	}
	s.streamKey = []byte(key)

	hash, err := store.Secret(ctx, secretAdminPassword)
	if adminPassword == "" && errors.Is(err, data.ErrNotFound) {
		adminPassword = randomSecret()
		gen.AdminPassword = adminPassword
	} else if err != nil && !errors.Is(err, data.ErrNotFound) {
		return nil, gen, err
	}
	if adminPassword != "" {
		h, err := bcrypt.GenerateFromPassword([]byte(adminPassword), bcrypt.DefaultCost)
		if err != nil {
			return nil, gen, fmt.Errorf("hash admin password: %w", err)
		}
		hash = string(h)
		if err := store.SetSecret(ctx, secretAdminPassword, hash); err != nil {
			return nil, gen, err
		}
	}
	s.adminHash = []byte(hash)
	return s, gen, nil
}

// randomSecret returns 26 lower-case base32 characters (130 bits): easy to
// paste into OBS, impossible to guess.
func randomSecret() string { return strings.ToLower(rand.Text()) }

// CheckStreamKey reports whether key is the stream key, in constant time.
func (s *Secrets) CheckStreamKey(key string) bool {
	s.mu.Lock()
	want := s.streamKey
	s.mu.Unlock()
	return subtle.ConstantTimeCompare([]byte(key), want) == 1
}

// StreamKey returns the stream key, for the admin panel only.
func (s *Secrets) StreamKey() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.streamKey)
}

// SetStreamKey changes the stream key.
func (s *Secrets) SetStreamKey(ctx context.Context, key string) error {
	if len(key) < minSecretLength {
		return fmt.Errorf("the stream key is %d characters long: use at least %d", len(key), minSecretLength)
	}
	if err := s.store.SetSecret(ctx, secretStreamKey, key); err != nil {
		return err
	}
	s.mu.Lock()
	s.streamKey = []byte(key)
	s.mu.Unlock()
	return nil
}

// CheckAdminPassword reports whether password is the admin password.
func (s *Secrets) CheckAdminPassword(password string) bool {
	sum := sha256.Sum256([]byte(password))
	s.mu.Lock()
	hash, ok := s.adminHash, s.adminOK
	s.mu.Unlock()
	if ok != nil && subtle.ConstantTimeCompare(sum[:], ok) == 1 {
		return true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil {
		return false
	}
	s.mu.Lock()
	if string(s.adminHash) == string(hash) {
		s.adminOK = sum[:]
	}
	s.mu.Unlock()
	return true
}
