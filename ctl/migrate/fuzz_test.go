package migrate

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"gnomon.dev/gnomon/service/config"
)

// FuzzChronyConf feeds arbitrary text to the chrony.conf reader as
// /etc/chrony/chrony.conf, beside a second file it may include. Whatever
// the input, the migration must not panic, and what it writes must be a
// gnomon.toml that config.Parse accepts: anything it cannot express it must
// leave out.
func FuzzChronyConf(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/chrony/*.conf")
	for _, p := range seeds {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(strings.ReplaceAll(string(data), "@DIR@", "/etc/chrony"))
	}
	for _, s := range []string{
		"include /etc/chrony/*.conf\n",
		"confdir /etc/chrony /etc/chrony/conf.d\nsourcedir /etc/chrony\n",
		"server [::1]:123\nserver 1.2.3.4 port 0\npool x nts maxsources 0\n",
		"allow all\ndeny all 10/8\nallow 0/0\nbindaddress ::ffff:1.2.3.4\nport 65535\n",
		"makestep 1e400 -9999999999\nmaxchange nan 1 1\nmaxdrift inf\nmaxdistance 0x1p-2\n",
		"ratelimit interval -19 burst 255 kod 9\nclientloglimit 999999999999\nallow 1.2.3.4\n",
		"ntsservercert /etc/chrony/inc.conf\nntsserverkey /etc/chrony/inc.conf\nallow\nntsport 1\n",
		"ntstrustedcerts 4294967295 /etc/chrony/inc.conf\nserver x nts certset 4294967295\n",
		"\xff\xfe server\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		fsys := fstest.MapFS{
			"etc/chrony/chrony.conf":    {Data: []byte(text)},
			"etc/chrony/inc.conf":       {Data: []byte("server inc.example.net iburst\n")},
			"etc/chrony/conf.d/a.conf":  {Data: []byte("minsources 2\n")},
			"etc/chrony/src.sources":    {Data: []byte("pool src.example.net\n")},
			"etc/chrony/cycle/one.conf": {Data: []byte("include /etc/chrony/chrony.conf\n")},
		}
		res, err := Chrony(DefaultChronyConf, Options{FS: fsys})
		if err != nil {
			var me *Error
			if !errors.As(err, &me) {
				t.Fatalf("error %v is %T, want *Error", err, err)
			}
			return
		}
		_, err = config.Parse("migrated", res.TOML, config.Options{CanSetClock: true})
		var es config.Errors
		if err != nil && !errors.As(err, &es) {
			t.Fatalf("Parse: %v", err)
		}
		for _, e := range es {
			// Files named in the migration exist in fsys, not on this
			// machine: that one check is config's, not the migrator's.
			if strings.HasSuffix(e.Key, "certificate-authority") || strings.HasSuffix(e.Key, "certificate-chain-path") || strings.HasSuffix(e.Key, "private-key-path") ||
				e.Key == "authentication.key-file" || strings.HasSuffix(e.Key, ".key") || e.Key == "synchronization.leap-seconds-file" {
				continue
			}
			t.Fatalf("migrated output does not parse: %v\ninput:\n%q\noutput:\n%s", e, text, res.TOML)
		}
		for _, w := range res.Warnings {
			if w.File == "" || w.Msg == "" {
				t.Fatalf("warning without file or message: %+v", w)
			}
		}
	})
}
