package controllers

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Custom emoji are images the admin uploads, listed by GET /api/emoji
// and served at /img/emoji/NAME, as in Owncast.
const (
	emojiDir      = "emoji"
	emojiURL      = "/img/emoji/"
	maxEmojiBytes = 256 << 10
	maxEmoji      = 1000
)

var emojiName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}\.(png|gif|webp|jpg)$`)

type emoji struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Emoji answers GET /api/emoji: the custom emoji.
func (h *Handlers) Emoji(w http.ResponseWriter, r *http.Request) {
	names, err := h.emojiNames()
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	out := []emoji{}
	for _, n := range names {
		out = append(out, emoji{Name: strings.TrimSuffix(n, path.Ext(n)), URL: emojiURL + n})
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handlers) emojiNames() ([]string, error) {
	names, err := h.deps.Uploads.List(emojiDir)
	if err != nil {
		return nil, err
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !emojiName.MatchString(n) })
	slices.Sort(names)
	return names, nil
}

// UploadEmoji answers POST /api/admin/emoji/upload with {"name":
// "wave.png", "data": a data URL of the image}.
func (h *Handlers) UploadEmoji(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
		Data string `json:"data"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	if !emojiName.MatchString(req.Name) {
		h.writeError(w, r, invalid("emoji name %q must be letters, digits, - or _ with .png, .gif, .webp or .jpg", req.Name))
		return
	}
	_, b64, found := strings.Cut(req.Data, ";base64,")
	img, err := base64.StdEncoding.DecodeString(b64)
	if !found || err != nil || len(img) == 0 {
		h.writeError(w, r, invalid(`emoji data must be a data URL such as "data:image/png;base64,..."`))
		return
	}
	if len(img) > maxEmojiBytes {
		h.writeError(w, r, invalid("the emoji is %d bytes: the limit is %d (256 KiB)", len(img), maxEmojiBytes))
		return
	}
	if _, ok := logoTypes[http.DetectContentType(img)]; !ok {
		h.writeError(w, r, invalid("an emoji must be a PNG, JPEG, GIF or WebP image"))
		return
	}
	names, err := h.emojiNames()
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	if len(names) >= maxEmoji && !slices.Contains(names, req.Name) {
		h.writeError(w, r, invalid("there are %d emoji already: delete some first", len(names)))
		return
	}
	if err := h.deps.Uploads.Put(r.Context(), emojiDir+"/"+req.Name, img); err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "emoji " + req.Name + " uploaded"})
}

// DeleteEmoji answers POST /api/admin/emoji/delete with {"name": ...}.
func (h *Handlers) DeleteEmoji(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name string `json:"name"`
	}
	if err := readJSON(w, r, &req); err != nil {
		h.writeError(w, r, err)
		return
	}
	// Owncast's admin sends the URL path; the name is its last part.
	name := path.Base(req.Name)
	if !emojiName.MatchString(name) {
		h.writeError(w, r, invalid("emoji name %q is not one of the emoji", req.Name))
		return
	}
	if err := h.deps.Uploads.Delete(r.Context(), emojiDir+"/"+name); err != nil {
		h.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "message": "emoji " + name + " deleted"})
}

// EmojiImage answers GET /img/emoji/NAME.
func (h *Handlers) EmojiImage(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !emojiName.MatchString(name) {
		http.NotFound(w, r)
		return
	}
	img, err := h.deps.Uploads.Get(r.Context(), emojiDir+"/"+name)
	if errors.Is(err, fs.ErrNotExist) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		h.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(img))
}
