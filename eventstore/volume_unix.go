//go:build linux || darwin || freebsd

package eventstore

import "syscall"

// volumeSpace returns the size of the file system holding dir and the bytes free to an
// unprivileged user; ok is false if it cannot be measured.
func volumeSpace(dir string) (total, free uint64, ok bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0, false
	}
	bsize := uint64(st.Bsize) // int64 on linux, uint32 on darwin
	return uint64(st.Blocks) * bsize, uint64(st.Bavail) * bsize, true
}
