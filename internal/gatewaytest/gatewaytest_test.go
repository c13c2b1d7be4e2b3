package gatewaytest

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestLogRecordsSkipsNonJSON(t *testing.T) {
	var b Buffer
	b.Write([]byte(`{"msg":"wsgate listening","addr":"127.0.0.1:1"}` + "\nplain text\n"))
	b.Write([]byte(`{"msg":"admin listening"}` + "\n"))
	recs := b.LogRecords()
	if len(recs) != 2 || recs[0]["addr"] != "127.0.0.1:1" || recs[1]["msg"] != "admin listening" {
		t.Fatalf("LogRecords = %v", recs)
	}
}

func TestWriteSecret(t *testing.T) {
	dir := t.TempDir()
	WriteSecret(t, dir, "wsgate/trust/partners", map[string]string{"certificates": "pem"})
	name := filepath.Join(dir, "wsgate", "trust", "partners.json")
	raw, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(raw, &got); err != nil || got["certificates"] != "pem" {
		t.Fatalf("secret = %s, %v", raw, err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v; want 0600", fi.Mode())
	}
}

func TestFreeAddrIsFree(t *testing.T) {
	addr := FreeAddr(t)
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on FreeAddr %s: %v", addr, err)
	}
	l.Close()
}
