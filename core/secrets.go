package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
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
// admin password: both guard the stream against strangers. The maxima
// bound what a login makes the server hash.
const (
	minSecretLength   = 8
	maxStreamKeyBytes = 256
	maxPasswordBytes  = 1024
)

// bcrypt reads at most 72 bytes of a password and ignores the rest, so the
// admin password is hashed with SHA-256 first, and bcrypt gets the 44
// characters of its base64. Hashes stored before carry no prefix; they were
// made from passwords of at most 72 bytes (x/crypto refuses longer ones).
const prehashedPrefix = "sha256+"

// bcryptSlots bounds the bcrypt comparisons running at once: each costs
// tens of milliseconds of a core, and guesses from many addresses must not
// take every core from the stream.
const bcryptSlots = 1

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

	// bcrypt holds a token per comparison running.
	bcrypt chan struct{}
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
	if streamKey != "" {
		if err := checkStreamKey(streamKey); err != nil {
			return nil, gen, err
		}
	}
	if adminPassword != "" {
		if err := checkPassword(adminPassword); err != nil {
			return nil, gen, err
		}
	}
	s := &Secrets{store: store, bcrypt: make(chan struct{}, bcryptSlots)}

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
		h, err := bcrypt.GenerateFromPassword(prehash(adminPassword), bcrypt.DefaultCost)
		if err != nil {
			return nil, gen, fmt.Errorf("hash admin password: %w", err)
		}
		hash = prehashedPrefix + string(h)
		if err := store.SetSecret(ctx, secretAdminPassword, hash); err != nil {
			return nil, gen, err
		}
	}
	s.adminHash = []byte(hash)
	return s, gen, nil
}

func checkStreamKey(key string) error {
	if n := len(key); n < minSecretLength || n > maxStreamKeyBytes {
		return fmt.Errorf("%w: the stream key is %d characters long: use %d to %d", ErrInvalidSettings, n, minSecretLength, maxStreamKeyBytes)
	}
	// OBS sends the key as an RTMP stream name; Starling cuts a "?query"
	// off it, and blanks or control characters cannot be typed reliably.
	if strings.ContainsFunc(key, func(r rune) bool { return r <= ' ' || r == '?' || r == 0x7f }) {
		return fmt.Errorf("%w: the stream key contains spaces, control characters or '?': use letters, digits and punctuation", ErrInvalidSettings)
	}
	return nil
}

func checkPassword(pw string) error {
	if n := len(pw); n < minSecretLength || n > maxPasswordBytes {
		return fmt.Errorf("%w: the admin password is %d bytes long: use %d to %d", ErrInvalidSettings, n, minSecretLength, maxPasswordBytes)
	}
	return nil
}

// prehash is what bcrypt gets of a password: every byte counts.
func prehash(password string) []byte {
	sum := sha256.Sum256([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
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
	if err := checkStreamKey(key); err != nil {
		return err
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
	if len(password) > maxPasswordBytes {
		return false
	}
	want, candidate := hash, []byte(password)
	if h, found := bytes.CutPrefix(hash, []byte(prehashedPrefix)); found {
		want, candidate = h, prehash(password)
	} else if len(password) > 72 {
		// A legacy hash holds at most 72 bytes; bcrypt would compare only
		// those and let anything be appended.
		return false
	}
	s.bcrypt <- struct{}{}
	err := bcrypt.CompareHashAndPassword(want, candidate)
	<-s.bcrypt
	if err != nil {
		return false
	}
	s.mu.Lock()
	if string(s.adminHash) == string(hash) {
		s.adminOK = sum[:]
	}
	s.mu.Unlock()
	return true
}
