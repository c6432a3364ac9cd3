package main

import (
	"testing"
)

func TestGCPercentResolution(t *testing.T) {
	noEnv := func(string) (string, bool) { return "", false }
	gogc := func(k string) (string, bool) { return "50", k == "GOGC" }
	cases := []struct {
		name    string
		flags   gcFlags
		env     func(string) (string, bool)
		want    int
		set     bool
		wantErr bool
	}{
		{"default", gcFlags{percent: defaultGCPercent}, noEnv, defaultGCPercent, true, false},
		{"GOGC in the environment is kept", gcFlags{percent: defaultGCPercent}, gogc, 0, false, false},
		{"the flag wins over GOGC", gcFlags{percent: 200, given: true}, gogc, 200, true, false},
		{"off", gcFlags{percent: -1, given: true}, noEnv, -1, true, false},
		{"zero is refused", gcFlags{percent: 0, given: true}, noEnv, 0, false, true},
		{"below -1 is refused", gcFlags{percent: -5, given: true}, noEnv, 0, false, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, set, err := tc.flags.resolve(tc.env)
			if (err != nil) != tc.wantErr || got != tc.want || set != tc.set {
				t.Fatalf("resolve = %d, %v, %v; want %d, %v, error %v", got, set, err, tc.want, tc.set, tc.wantErr)
			}
		})
	}
}

func TestServeFlagsGCPercent(t *testing.T) {
	m := NewMain(nil, nil)
	if err := m.ParseFlags([]string{"--gc-percent", "0"}); err == nil {
		t.Fatal("--gc-percent 0 was accepted")
	}
	m = NewMain(nil, nil)
	if err := m.ParseFlags([]string{"--gc-percent", "250"}); err != nil {
		t.Fatal(err)
	}
	if !m.gc.given || m.gc.percent != 250 {
		t.Fatalf("gc flags = %+v", m.gc)
	}
	m = NewMain(nil, nil)
	if err := m.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if m.gc.given || m.gc.percent != defaultGCPercent {
		t.Fatalf("gc flags without --gc-percent = %+v", m.gc)
	}
}
