package redisstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"wsgate/redisstore/redistest"
)

// startRedisProc runs redis-server with args (plus a free port) in a temp
// dir, waits until it answers PING and kills it when the test ends.
func startRedisProc(t *testing.T, args ...string) (addr string) {
	t.Helper()
	bin := redistest.Require(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	dir := t.TempDir()
	for i, a := range args { // a config file argument is written into dir
		if strings.HasPrefix(a, "CONF:") {
			conf := filepath.Join(dir, "redis.conf")
			if err := os.WriteFile(conf, []byte(strings.ReplaceAll(strings.TrimPrefix(a, "CONF:"), "$PORT", strconv.Itoa(port))), 0o600); err != nil {
				t.Fatal(err)
			}
			args[i] = conf
		}
	}
	args = append(args, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--daemonize", "no", "--loglevel", "warning")
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
	c := redis.NewClient(&redis.Options{Addr: addr, DialTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		select {
		case <-done:
			t.Fatalf("redis-server %v exited: %s", args, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server %v did not answer on %s: %s", args, addr, logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return addr
}

func waitUntil(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// replayRoundTrip checks the replay cache and a rate limiter on c: a key
// is new once, then a replay; a burst of 2 allows 2 and refuses the third.
func replayRoundTrip(t *testing.T, c redis.UniversalClient, key [32]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	rc := NewReplayCache(c, "wsgate-test:")
	until := time.Now().Add(time.Minute)
	if seen, err := rc.Remember(ctx, key, until); err != nil || seen {
		t.Fatalf("first Remember = %v, %v; want not seen", seen, err)
	}
	if seen, err := rc.Remember(ctx, key, until); err != nil || !seen {
		t.Fatalf("replayed Remember = %v, %v; want seen", seen, err)
	}
	lim, err := NewLimiter(c, "wsgate-test:", "r", 0.001, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := fmt.Sprintf("client-%x", key[:4])
	for i, want := range []bool{true, true, false} {
		if ok, _ := lim.Allow(client); ok != want {
			t.Fatalf("Allow #%d = %v, want %v", i+1, ok, want)
		}
	}
	// The bucket lives in Redis (redis_rate keys it under "rate:"), not
	// in the limiter's in-memory fallback.
	if n, err := c.Exists(ctx, "rate:"+lim.Key(client)).Result(); err != nil || n != 1 {
		keys, _ := c.Keys(ctx, "*").Result()
		t.Fatalf("rate-limit bucket in Redis: %d, %v (keys %q)", n, err, keys)
	}
	if n, err := c.Exists(ctx, rc.Key(key)).Result(); err != nil || n != 1 {
		t.Fatalf("replay key in Redis: %d, %v", n, err)
	}
}

func TestUniversalClientSingle(t *testing.T) {
	addr := startRedisProc(t)
	c := NewUniversalClient(Topology{Address: addr})
	defer c.Close()
	if _, ok := c.(*redis.Client); !ok {
		t.Fatalf("client is %T, want *redis.Client", c)
	}
	replayRoundTrip(t, c, sha256.Sum256([]byte("single")))
}

// A one-node Redis Cluster holding every slot: the replay cache and the
// limiter's script run through the cluster client.
func TestUniversalClientCluster(t *testing.T) {
	addr := startRedisProc(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf")
	admin := redis.NewClient(&redis.Options{Addr: addr})
	defer admin.Close()
	ctx := context.Background()
	if err := admin.ClusterAddSlotsRange(ctx, 0, 16383).Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "cluster_state:ok", func() error {
		info, err := admin.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return fmt.Errorf("cluster info: %s", info)
		}
		return nil
	})
	c := NewUniversalClient(Topology{Addresses: []string{addr}})
	defer c.Close()
	if _, ok := c.(*redis.ClusterClient); !ok {
		t.Fatalf("client is %T, want *redis.ClusterClient", c)
	}
	if err := Ping(ctx, c); err != nil {
		t.Fatal(err)
	}
	replayRoundTrip(t, c, sha256.Sum256([]byte("cluster")))
}

// A master, a replica and a Sentinel: the client finds the master through
// Sentinel, and after the master dies it follows the failover to the
// promoted replica, where a message remembered before is still a replay.
func TestUniversalClientSentinelFailover(t *testing.T) {
	master := startRedisProc(t)
	mhost, mport, _ := net.SplitHostPort(master)
	replica := startRedisProc(t, "--replicaof", mhost, mport)
	sentinel := startRedisProc(t, "CONF:port $PORT\nsentinel monitor wsgate "+mhost+" "+mport+" 1\n"+
		"sentinel down-after-milliseconds wsgate 1000\nsentinel failover-timeout wsgate 5000\n", "--sentinel")
	ctx := context.Background()
	rc := redis.NewClient(&redis.Options{Addr: replica})
	defer rc.Close()
	waitUntil(t, 20*time.Second, "replica in sync", func() error {
		info, err := rc.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("replication: %s", info)
		}
		return nil
	})
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel})
	defer sc.Close()
	waitUntil(t, 20*time.Second, "sentinel sees the replica", func() error {
		rs, err := sc.Replicas(ctx, "wsgate").Result()
		if err != nil {
			return err
		}
		if len(rs) == 0 {
			return fmt.Errorf("no replicas yet")
		}
		return nil
	})

	c := NewUniversalClient(Topology{Addresses: []string{sentinel}, SentinelMaster: "wsgate"})
	defer c.Close()
	key := sha256.Sum256([]byte("sentinel"))
	replayRoundTrip(t, c, key)
	// WAIT until the replica has the key, so the failover cannot lose it.
	if n, err := c.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n < 1 {
		t.Fatalf("WAIT = %d, %v", n, err)
	}

	// Kill the master: Sentinel promotes the replica and the client follows.
	mc := redis.NewClient(&redis.Options{Addr: master})
	_ = mc.Shutdown(ctx).Err() // the connection drops as it exits
	mc.Close()
	rcache := NewReplayCache(c, "wsgate-test:")
	waitUntil(t, 30*time.Second, "the replay cache answers from the promoted replica", func() error {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		seen, err := rcache.Remember(cctx, key, time.Now().Add(time.Minute))
		if err != nil {
			return err
		}
		if !seen {
			t.Fatal("after failover, a remembered message is not seen")
		}
		return nil
	})
	got, err := sc.GetMasterAddrByName(ctx, "wsgate").Result()
	if err != nil || net.JoinHostPort(got[0], got[1]) != replica {
		t.Errorf("master after failover = %v, %v; want the replica %s", got, err, replica)
	}
}
