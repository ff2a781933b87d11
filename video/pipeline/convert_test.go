package pipeline

import (
	"reflect"
	"testing"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/video/ingest"
)

// fill sets every field of the struct p points to a value of its own,
// none of them zero.
func fill(t *testing.T, p any) {
	t.Helper()
	v := reflect.ValueOf(p).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int:
			f.SetInt(int64(i + 1))
		case reflect.Float64:
			f.SetFloat(float64(i) + 1.5)
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		default:
			t.Fatalf("fill does not know %s.%s's kind %s: teach it", v.Type(), v.Type().Field(i).Name, f.Kind())
		}
	}
}

// sameFields fails unless every field of to holds the field of the same
// name in from: a field the conversion forgot is zero, since fill set
// none to zero.
func sameFields(t *testing.T, from, to any) {
	t.Helper()
	fv, tv := reflect.ValueOf(from), reflect.ValueOf(to)
	for i := range tv.NumField() {
		name := tv.Type().Field(i).Name
		src := fv.FieldByName(name)
		if !src.IsValid() {
			t.Errorf("%s has %s, which %s lacks", tv.Type(), name, fv.Type())
			continue
		}
		if got, want := tv.Field(i).Interface(), src.Interface(); got != want {
			t.Errorf("%s.%s = %v, want %v from %s", tv.Type(), name, got, want, fv.Type())
		}
	}
}

func TestTranscodeVariantsCopiesEveryField(t *testing.T) {
	var v core.Variant
	fill(t, &v)
	got := transcodeVariants([]core.Variant{v, {Name: "second"}})
	if len(got) != 2 {
		t.Fatalf("%d variants, want 2", len(got))
	}
	sameFields(t, v, got[0])
	if got[1].Name != "second" {
		t.Errorf("second variant is %+v", got[1])
	}
	if transcodeVariants(nil) != nil {
		t.Error("no variants became some")
	}
}

func TestStreamDetailsCopiesEveryField(t *testing.T) {
	var d ingest.Details
	fill(t, &d)
	got := streamDetails(d)
	// Every field ingest parses reaches core.
	sameFields(t, got, d)
}
