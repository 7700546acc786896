package netmgr

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"berth/store"
)

// Every generated file is reached from a directory file descriptor, one path component at a
// time, with O_NOFOLLOW: a symlink put where a sandbox's directory or file goes is never
// followed, neither to write, nor to read, nor to delete. Only the daemon's own configured
// directories (FilesDir, RunDir) are opened by path, so an admin may point /etc/netns
// elsewhere on purpose. Hard links are refused too: writing a file with a second name
// changes that other file as well.

// maxFileSize bounds how much of a generated file is read to compare it: berth writes a few
// KiB; anything larger is someone else's content.
const maxFileSize = 1 << 20

// UnsafePathError is a path berth refuses to write through. It counts as a conflict with
// what is on disk (errors.Is(err, store.ErrConflict)): the API answers 409, and nothing was
// changed.
type UnsafePathError struct {
	Path   string
	Reason string // e.g. "is a symlink: refusing to write through it"
}

func (e *UnsafePathError) Error() string   { return e.Path + " " + e.Reason }
func (e *UnsafePathError) Is(t error) bool { return t == store.ErrConflict }

// fileLoc is one directory of a sandbox's generated files.
type fileLoc struct {
	key  string   // "etc" or "run": the first part of store.File names
	base string   // FilesDir or RunDir, opened by path as configured
	sub  []string // components below base, each opened without following a symlink
}

func (l fileLoc) dir() string { return filepath.Join(append([]string{l.base}, l.sub...)...) }

// openDir opens l's directory. With create, base and missing components are made (0755).
// A missing component without create is fs.ErrNotExist; a symlink or non-directory is an
// *UnsafePathError.
func openDir(l fileLoc, create bool) (int, error) {
	if create {
		if err := os.MkdirAll(l.base, 0o755); err != nil {
			return -1, err
		}
	}
	fd, err := unix.Open(l.base, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: l.base, Err: err}
	}
	path := l.base
	for _, name := range l.sub {
		path = filepath.Join(path, name)
		next, err := openSub(fd, path, name, create)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = next
	}
	return fd, nil
}

// openSub opens directory name in dirfd (path is its full name, for errors).
func openSub(dirfd int, path, name string, create bool) (int, error) {
	if create {
		if err := unix.Mkdirat(dirfd, name, 0o755); err != nil && err != unix.EEXIST {
			return -1, &os.PathError{Op: "mkdir", Path: path, Err: err}
		}
	}
	fd, err := unix.Openat(dirfd, name, unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		return fd, nil
	}
	// O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR, like on a file: tell them apart.
	if err == unix.ENOTDIR || err == unix.ELOOP {
		return -1, refusal(dirfd, path, name)
	}
	return -1, &os.PathError{Op: "open", Path: path, Err: err}
}

// refusal says why name in dirfd cannot be used as berth's directory or file.
func refusal(dirfd int, path, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "stat", Path: path, Err: err}
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return &UnsafePathError{Path: path, Reason: "is a symlink: refusing to write through it"}
	case unix.S_IFDIR:
		return &UnsafePathError{Path: path, Reason: "is a directory, not a file"}
	case unix.S_IFREG:
		return &UnsafePathError{Path: path, Reason: "is not a directory"}
	}
	return &UnsafePathError{Path: path, Reason: "is not a regular file: refusing to write it"}
}

// openFile opens name in dirfd without following a symlink, as a regular file with one
// link, with flags added to O_NOFOLLOW. A missing file (without O_CREAT) is fs.ErrNotExist.
func openFile(dirfd int, path, name string, flags int) (*os.File, error) {
	// O_NONBLOCK: a FIFO put there must not hang the daemon; harmless on a regular file.
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	if err == unix.ELOOP || err == unix.EISDIR || err == unix.ENXIO {
		return nil, refusal(dirfd, path, name)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, &UnsafePathError{Path: path, Reason: "is not a regular file: refusing to write it"}
	}
	if st.Nlink > 1 {
		f.Close()
		return nil, &UnsafePathError{Path: path, Reason: fmt.Sprintf("has %d hard links: refusing to write through it", st.Nlink)}
	}
	return f, nil
}

// diskState is what a generated file holds: its hash, or "" for a file that is not there.
// An existing empty file hashes like any content.
type diskState = string

// readState returns the state of name in dirfd (dirfd < 0: its directory is missing).
func readState(dirfd int, path, name string) (diskState, error) {
	if dirfd < 0 {
		return "", nil
	}
	f, err := openFile(dirfd, path, name, unix.O_RDONLY)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := readLimited(f)
	if err != nil {
		return "", err
	}
	return hashOf(b), nil
}

// readLimited reads f from its start; more than maxFileSize gives a content no render has.
func readLimited(f *os.File) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, maxFileSize+1), maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return b, nil
}

// hashOf is how store.File records a content: hex SHA-256.
func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// rewriteAt makes name in dirfd hold data, in place (truncate + write: a bind-mounted file
// must keep its inode), provided it still holds what was planned (was: its state when the
// write was decided; "" also accepts an empty file, which is one this call created). It
// returns false, writing nothing, if someone changed the file in between. A file that
// already holds data is not written (nor its mtime changed).
func rewriteAt(dirfd int, path, name string, was diskState, data []byte) (bool, error) {
	f, err := openFile(dirfd, path, name, unix.O_RDWR|unix.O_CREAT)
	if err != nil {
		return false, err
	}
	defer f.Close()
	cur, err := readLimited(f)
	if err != nil {
		return false, err
	}
	if bytes.Equal(cur, data) {
		return true, nil
	}
	if h := hashOf(cur); h != was && !(was == "" && len(cur) == 0) {
		return false, nil
	}
	if err := f.Truncate(0); err != nil {
		return false, fmt.Errorf("truncate %s: %w", path, err)
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, f.Close()
}

// removeLoc deletes files from l's directory, then the directory if nothing else is in it
// (what a user put there is theirs). A symlink in the directory's place is left alone and
// reported; unlinkat never follows one inside it.
func removeLoc(l fileLoc, files []string) error {
	parent := fileLoc{base: l.base, sub: l.sub[:len(l.sub)-1]}
	pfd, err := openDir(parent, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	last, path := l.sub[len(l.sub)-1], l.dir()
	fd, err := openSub(pfd, path, last, false)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		var ue *UnsafePathError
		if errors.As(err, &ue) {
			return fmt.Errorf("not removing %s: %s", ue.Path, ue.Reason)
		}
		return err
	}
	var errs []error
	for _, name := range files {
		if err := unix.Unlinkat(fd, name, 0); err != nil && err != unix.ENOENT {
			errs = append(errs, &os.PathError{Op: "remove", Path: filepath.Join(path, name), Err: err})
		}
	}
	unix.Close(fd)
	if err := unix.Unlinkat(pfd, last, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT && err != unix.ENOTEMPTY && err != unix.EEXIST {
		errs = append(errs, &os.PathError{Op: "remove", Path: path, Err: err})
	}
	return errors.Join(errs...)
}
