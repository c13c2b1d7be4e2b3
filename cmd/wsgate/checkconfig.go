package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"wsgate/config"
	"wsgate/gateway"
	"wsgate/secrets"
)

// maxConfigBytes bounds a configuration file; real ones are a few KiB.
const maxConfigBytes = 4 << 20

// secretsCheckTimeout bounds check-config -secrets as a whole.
const secretsCheckTimeout = time.Minute

// checkConfigFile reads the file at path and checks it (config.Check). A
// file that cannot be read is one problem of the report.
func checkConfigFile(path string) *config.Report {
	data, err := readConfigFile(path)
	if err != nil {
		r := &config.Report{}
		r.Add("", err.Error())
		return r
	}
	return config.Check(data)
}

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the caller prints the path already
		}
		return nil, fmt.Errorf("cannot read the file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read the file: %w", err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("the file is larger than %d bytes", maxConfigBytes)
	}
	return data, nil
}

// checkSecretsDir reports a file backend whose directory is missing: every
// secret would be missing and serve would answer 503 to everything.
func checkSecretsDir(r *config.Report, cfg *config.Config, baseDir string) {
	s := cfg.Secrets
	if s.Backend != "file" || s.File.Dir == "" || r.Troubled("secrets.file.dir") {
		return
	}
	dir := resolve(baseDir, s.File.Dir)
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.Add("secrets.file.dir", fmt.Sprintf("directory %s does not exist", dir))
	case err != nil:
		r.Add("secrets.file.dir", fmt.Sprintf("cannot open directory %s: %v", dir, unwrapPath(err)))
	case !st.IsDir():
		r.Add("secrets.file.dir", fmt.Sprintf("%s is not a directory", dir))
	}
}

// checkSecrets reads every secret cfg names from the configured backend and
// reports each one that is missing, lacks a field or does not parse, at the
// key that names it. Keys the file already got wrong are skipped.
func checkSecrets(ctx context.Context, r *config.Report, cfg *config.Config, baseDir string, stderr io.Writer) {
	if r.Troubled("secrets") {
		fmt.Fprintln(stderr, "wsgate check-config: secrets not read: fix the secrets section first")
		return
	}
	b, err := checkBackend(cfg, baseDir)
	if err != nil {
		r.Add("secrets."+cfg.Secrets.Backend, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(ctx, secretsCheckTimeout)
	defer cancel()
	if v, ok := b.(*secrets.Vault); ok {
		wrapped, err := v.SecretIDWrapped(ctx)
		switch {
		case err != nil:
			r.Add("secrets.vault", err.Error())
			return
		case wrapped:
			// Logging in would unwrap it, and serve could then never log in.
			r.Add("secrets.vault.auth.secret_id_file", "holds a response-wrapped secret ID, which works once: "+
				"secrets not read (check with a plain secret ID or a token)")
			return
		}
	}
	cached := &readOnce{b: b, seen: map[string]readResult{}}
	for _, ref := range cfg.SecretRefs() {
		if r.Troubled(ref.Path) {
			continue
		}
		if err := secrets.Check(ctx, cached, ref.Secret, secrets.Use(ref.Use)); err != nil {
			r.Add(ref.Path, err.Error())
		}
	}
}

// checkBackend opens the configured backend for one-shot reads: unlike
// serving, it keeps no token alive. Relative paths are resolved against
// baseDir, the config file's directory, as serve resolves them.
func checkBackend(cfg *config.Config, baseDir string) (secrets.Backend, error) {
	switch s := cfg.Secrets; s.Backend {
	case "file":
		return secrets.NewFile(resolve(baseDir, s.File.Dir)), nil
	case "vault":
		opts := gateway.VaultOptions(cfg, baseDir)
		opts.Timeout, opts.MaxRetries = 10*time.Second, 1
		return secrets.NewVault(opts)
	}
	return nil, fmt.Errorf("unknown secrets backend %q", cfg.Secrets.Backend)
}

func resolve(baseDir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(baseDir, p)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readOnce reads each secret path once, however many keys name it.
type readOnce struct {
	b    secrets.Backend
	seen map[string]readResult
}

type readResult struct {
	fields map[string]string
	err    error
}

func (o *readOnce) Read(ctx context.Context, path string) (map[string]string, error) {
	res, ok := o.seen[path]
	if !ok {
		res.fields, res.err = o.b.Read(ctx, path)
		o.seen[path] = res
	}
	return res.fields, res.err
}
