package controllers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/video/hls"
)

// storageState is how the current broadcast's storage is doing.
type storageState interface {
	StorageStatus() hls.StorageStatus
}

// s3Tester checks S3 settings against the bucket.
type s3Tester interface {
	TestS3(ctx context.Context, s *core.Settings, secret string) (passed, warnings []string, err error)
}

// storageWarnings say what the admin should know about the storage.
func storageWarnings(st hls.StorageStatus) []string {
	var out []string
	if st.Down {
		out = append(out, fmt.Sprintf("The S3 bucket has been failing since %s (%s). Viewers are served from this server meanwhile, and %d segments (%d MB) wait on its disk to be uploaded when the bucket is back. Check the bucket and its credentials with the storage test.",
			st.DownSince.Format(time.TimeOnly), st.LastError, st.Backlog, st.BacklogBytes>>20))
	}
	if st.Dropped > 0 {
		out = append(out, fmt.Sprintf("%d segments were never uploaded to the S3 bucket: it was down longer than this server keeps segments for it. Viewers got them from this server.", st.Dropped))
	}
	return out
}

// storageTestResponse is the answer of the storage test.
type storageTestResponse struct {
	Success  bool     `json:"success"`
	Message  string   `json:"message"`
	Passed   []string `json:"passed"`
	Warnings []string `json:"warnings"`
}

// TestS3 answers POST /api/admin/storage/test with the value of
// config/s3: endpoint, credentials and bucket are checked by listing,
// writing, reading back and deleting a test object, before the settings
// are saved. The secret as serverconfig shows it (masked), or none, tests
// the stored one. Every step's outcome is in the answer; a failure says in
// plain words what went wrong and what to do.
func (h *Handlers) TestS3(w http.ResponseWriter, r *http.Request) {
	v, err := readValue[s3Config](w, r)
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	secret := strings.TrimSpace(v.Secret)
	if secret == "" || secret == secretMask {
		if secret, err = h.deps.Keys.S3Secret(r.Context()); err != nil {
			h.writeError(w, r, err)
			return
		}
	}
	v.Enabled = true
	if err := v.S3Settings.Validate(); err != nil {
		h.writeError(w, r, err)
		return
	}
	if secret == "" {
		h.writeError(w, r, invalid("s3 secret is empty: give the secret access key of the bucket's credentials"))
		return
	}
	s := *h.deps.Settings.Get()
	s.S3 = v.S3Settings
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	passed, warnings, err := h.deps.S3Test.TestS3(ctx, &s, secret)
	res := storageTestResponse{Success: err == nil, Passed: passed, Warnings: warnings}
	if res.Passed == nil {
		res.Passed = []string{}
	}
	if res.Warnings == nil {
		res.Warnings = []string{}
	}
	if err != nil {
		// The S3 storage's errors are written for the admin, and never
		// carry the secret.
		res.Message = err.Error()
		h.log.Info("S3 storage test failed", "err", err)
		writeJSON(w, http.StatusBadRequest, res)
		return
	}
	res.Message = "the bucket works: segments can be stored, read and deleted"
	writeJSON(w, http.StatusOK, res)
}
