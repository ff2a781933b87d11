package peer

import (
	"encoding/hex"
	"encoding/json"
	"testing"
)

// TestBinaryStringsFromJS: an offer_id is 20 random bytes as a JS binary
// string. Here is every byte value as JSON.stringify writes it and the
// WebSocket sends it (UTF-8), from
//
//	let all = ""; for (let i = 0; i < 256; i++) all += String.fromCharCode(i);
//	Buffer.from(JSON.stringify({offer_id: all}), "utf8").toString("hex")
func TestBinaryStringsFromJS(t *testing.T) {
	const wire = "7b226f666665725f6964223a225c75303030305c75303030315c75303030325c75303030335c75303030345c75303030355c75303030365c75303030375c625c745c6e5c75303030625c665c725c75303030655c75303030665c75303031305c75303031315c75303031325c75303031335c75303031345c75303031355c75303031365c75303031375c75303031385c75303031395c75303031615c75303031625c75303031635c75303031645c75303031655c753030316620215c22232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5c5d5e5f606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7fc280c281c282c283c284c285c286c287c288c289c28ac28bc28cc28dc28ec28fc290c291c292c293c294c295c296c297c298c299c29ac29bc29cc29dc29ec29fc2a0c2a1c2a2c2a3c2a4c2a5c2a6c2a7c2a8c2a9c2aac2abc2acc2adc2aec2afc2b0c2b1c2b2c2b3c2b4c2b5c2b6c2b7c2b8c2b9c2bac2bbc2bcc2bdc2bec2bfc380c381c382c383c384c385c386c387c388c389c38ac38bc38cc38dc38ec38fc390c391c392c393c394c395c396c397c398c399c39ac39bc39cc39dc39ec39fc3a0c3a1c3a2c3a3c3a4c3a5c3a6c3a7c3a8c3a9c3aac3abc3acc3adc3aec3afc3b0c3b1c3b2c3b3c3b4c3b5c3b6c3b7c3b8c3b9c3bac3bbc3bcc3bdc3bec3bf227d"
	raw, _ := hex.DecodeString(wire)
	var m struct {
		OfferID string `json:"offer_id"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	if m.OfferID != binaryString(all) {
		t.Fatal("the JS binary string decodes to another Go string than binaryString makes")
	}
	b, ok := binaryBytes(m.OfferID)
	if !ok || string(b) != string(all) {
		t.Fatalf("binaryBytes = %x, %v", b, ok)
	}
	// What we send decodes to the same string.
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		OfferID string `json:"offer_id"`
	}
	if err := json.Unmarshal(out, &back); err != nil || back.OfferID != m.OfferID {
		t.Fatalf("round trip through encoding/json changed the id: %v", err)
	}
	if _, ok := binaryBytes("\u0100"); ok {
		t.Fatal("binaryBytes accepted a character above 0xff")
	}
}

func TestNewPeerID(t *testing.T) {
	id := newPeerID()
	if len(id) != 20 || id[:8] != "-PM0203-" {
		t.Fatalf("newPeerID() = %q", id)
	}
	for _, r := range id[8:] {
		if !('A' <= r && r <= 'Z' || 'a' <= r && r <= 'z' || '0' <= r && r <= '9') {
			t.Fatalf("newPeerID() = %q has %q", id, r)
		}
	}
}
