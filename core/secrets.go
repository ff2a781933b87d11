package core

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/starling-live/starling/core/data"
)

// Secret names in the secrets table.
const (
	secretStreamKey     = "stream_key" // the one key before there were several
	secretStreamKeys    = "stream_keys"
	secretAdminPassword = "admin_password_bcrypt"
	secretS3            = "s3_secret_key"
	secretActorKey      = "actor_private_key"
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

	// keysChanged are told when the stream keys change; set before the
	// server starts.
	keysChanged []func()

	// mu guards the fields below.
	mu        sync.Mutex
	keys      []StreamKey
	adminHash []byte
	// adminOK caches the SHA-256 of the last password that passed bcrypt,
	// so that an admin panel polling the API does not pay bcrypt per request.
	adminOK []byte

	// bcrypt holds a token per comparison running.
	bcrypt chan struct{}

	// actorMu serialises the actor key's first generation; actorKey is the
	// key once loaded.
	actorMu  sync.Mutex
	actorKey *rsa.PrivateKey
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

	keys, err := loadStreamKeys(ctx, store)
	switch {
	case err != nil:
		return nil, gen, err
	case streamKey != "":
		// The flag's key is the first; the admin's others stay.
		keys = slices.DeleteFunc(keys, func(k StreamKey) bool { return k.Key == streamKey })
		if len(keys) > 0 && keys[0].Comment == flagKeyComment {
			keys = keys[1:]
		}
		keys = slices.Insert(keys, 0, StreamKey{Key: streamKey, Comment: flagKeyComment})
	case len(keys) == 0:
		keys = []StreamKey{{Key: randomSecret(), Comment: "Default stream key"}}
		gen.StreamKey = keys[0].Key
	}
	if err := storeStreamKeys(ctx, store, keys); err != nil {
		return nil, gen, err
	}
	s.keys = keys

	hash, err := store.Secret(ctx, secretAdminPassword)
	if adminPassword == "" && errors.Is(err, data.ErrNotFound) {
		adminPassword = randomSecret()
		gen.AdminPassword = adminPassword
	} else if err != nil && !errors.Is(err, data.ErrNotFound) {
		return nil, gen, err
	}
	if adminPassword != "" {
		if hash, err = hashPassword(adminPassword); err != nil {
			return nil, gen, err
		}
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

// hashPassword is what is stored of an admin password.
func hashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword(prehash(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash admin password: %w", err)
	}
	return prehashedPrefix + string(h), nil
}

// prehash is what bcrypt gets of a password: every byte counts.
func prehash(password string) []byte {
	sum := sha256.Sum256([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(sum[:]))
}

// randomSecret returns 26 lower-case base32 characters (130 bits): easy to
// paste into OBS, impossible to guess.
func randomSecret() string { return strings.ToLower(rand.Text()) }

// StreamKey is a key publishers may use, with the admin's note on it.
type StreamKey struct {
	Key     string `json:"key"`
	Comment string `json:"comment"`
}

// flagKeyComment marks the key --stream-key set.
const flagKeyComment = "Set with --stream-key"

// maxStreamKeys bounds the list.
const maxStreamKeys = 20

func loadStreamKeys(ctx context.Context, store *data.Store) ([]StreamKey, error) {
	raw, err := store.Secret(ctx, secretStreamKeys)
	if errors.Is(err, data.ErrNotFound) {
		// Stored before there were several: the one key, if any.
		one, err := store.Secret(ctx, secretStreamKey)
		if errors.Is(err, data.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []StreamKey{{Key: one, Comment: "Default stream key"}}, nil
	}
	if err != nil {
		return nil, err
	}
	var keys []StreamKey
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		return nil, fmt.Errorf("stored stream keys are not valid JSON (%v): set them again with --stream-key", err)
	}
	return keys, nil
}

func storeStreamKeys(ctx context.Context, store *data.Store, keys []StreamKey) error {
	raw, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	return store.SetSecret(ctx, secretStreamKeys, string(raw))
}

// CheckStreamKey reports whether key is one of the stream keys, in time
// that does not depend on which one, or how much of it, matched.
func (s *Secrets) CheckStreamKey(key string) bool {
	s.mu.Lock()
	keys := s.keys
	s.mu.Unlock()
	match := 0
	for _, k := range keys {
		match |= subtle.ConstantTimeCompare([]byte(key), []byte(k.Key))
	}
	return match == 1
}

// StreamKeys returns the stream keys, for the admin panel only.
func (s *Secrets) StreamKeys() []StreamKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

// OnStreamKeysChanged has f called after the stream keys change, so that
// a broadcast using a revoked key can be ended. Call it before the server
// starts.
func (s *Secrets) OnStreamKeysChanged(f func()) { s.keysChanged = append(s.keysChanged, f) }

// SetStreamKeys replaces the stream keys: one at least, each valid, none
// twice.
func (s *Secrets) SetStreamKeys(ctx context.Context, keys []StreamKey) error {
	if len(keys) == 0 || len(keys) > maxStreamKeys {
		return fmt.Errorf("%w: %d stream keys given: give 1 to %d", ErrInvalidSettings, len(keys), maxStreamKeys)
	}
	seen := map[string]bool{}
	for i, k := range keys {
		if err := checkStreamKey(k.Key); err != nil {
			return fmt.Errorf("stream key %d: %w", i+1, err)
		}
		if seen[k.Key] {
			return fmt.Errorf("%w: stream key %d is given twice", ErrInvalidSettings, i+1)
		}
		seen[k.Key] = true
		if utf8.RuneCountInString(k.Comment) > 200 {
			return fmt.Errorf("%w: the comment of stream key %d is longer than 200 characters", ErrInvalidSettings, i+1)
		}
	}
	keys = slices.Clone(keys)
	if err := storeStreamKeys(ctx, s.store, keys); err != nil {
		return err
	}
	s.mu.Lock()
	s.keys = keys
	s.mu.Unlock()
	for _, f := range s.keysChanged {
		f()
	}
	return nil
}

// SetAdminPassword changes the admin password, at once: the old one no
// longer logs in.
func (s *Secrets) SetAdminPassword(ctx context.Context, password string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := hashPassword(password)
	if err != nil {
		return err
	}
	if err := s.store.SetSecret(ctx, secretAdminPassword, hash); err != nil {
		return err
	}
	s.mu.Lock()
	s.adminHash, s.adminOK = []byte(hash), nil
	s.mu.Unlock()
	return nil
}

// S3Secret returns the secret key of the S3 credentials, "" if none.
func (s *Secrets) S3Secret(ctx context.Context) (string, error) {
	v, err := s.store.Secret(ctx, secretS3)
	if errors.Is(err, data.ErrNotFound) {
		return "", nil
	}
	return v, err
}

// SetS3Secret stores the secret key of the S3 credentials.
func (s *Secrets) SetS3Secret(ctx context.Context, secret string) error {
	if len(secret) > 1024 {
		return fmt.Errorf("%w: the s3 secret is %d bytes long: the limit is 1024", ErrInvalidSettings, len(secret))
	}
	return s.store.SetSecret(ctx, secretS3, secret)
}

// actorKeyBits is the size of the fediverse actor's key: what Mastodon
// makes and every server verifies.
const actorKeyBits = 2048

// ActorKey returns the private key the fediverse actor signs with,
// generating and storing it the first time. It never changes after that:
// remote servers cache the public key, and a new one would break every
// follower.
func (s *Secrets) ActorKey(ctx context.Context) (*rsa.PrivateKey, error) {
	s.actorMu.Lock()
	defer s.actorMu.Unlock()
	if s.actorKey != nil {
		return s.actorKey, nil
	}
	v, err := s.store.Secret(ctx, secretActorKey)
	switch {
	case errors.Is(err, data.ErrNotFound):
		key, err := rsa.GenerateKey(rand.Reader, actorKeyBits)
		if err != nil {
			return nil, fmt.Errorf("generate the fediverse key: %w", err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := s.store.SetSecret(ctx, secretActorKey, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))); err != nil {
			return nil, err
		}
		s.actorKey = key
	case err != nil:
		return nil, err
	default:
		block, _ := pem.Decode([]byte(v))
		if block == nil {
			return nil, errors.New("the stored fediverse key is not PEM: restore the database from a backup (a new key would break every follower)")
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		key, ok := k.(*rsa.PrivateKey)
		if err != nil || !ok {
			return nil, fmt.Errorf("the stored fediverse key is not an RSA key (%v): restore the database from a backup (a new key would break every follower)", err)
		}
		s.actorKey = key
	}
	return s.actorKey, nil
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

// AdminPasswordVersion names the admin password in force without
// revealing anything of it: it changes whenever the password is set
// (also to the same one, as --admin-password does at each start), so that
// admin sessions opened under another password end.
func (s *Secrets) AdminPasswordVersion() string {
	s.mu.Lock()
	hash := s.adminHash
	s.mu.Unlock()
	sum := sha256.Sum256(hash)
	return base64.RawStdEncoding.EncodeToString(sum[:])
}
