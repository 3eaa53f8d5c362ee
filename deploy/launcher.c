/* The front of dist/fkllmproxy: unpack the frozen program once, then become it.
 *
 * dist/fkllmproxy is this launcher followed by a zlib-compressed archive of the
 * PyInstaller one-directory build (its own CPython, every dependency's extension
 * modules and shared libraries) and a trailer naming the archive's place and digest.
 *
 * On start it looks for CACHE/fkllmproxy-DIGEST/, unpacks it there the first time
 * (into a private temporary directory, renamed into place when complete, so concurrent
 * starts and interrupted ones never see half a tree), and execve()s the program in it
 * with the same arguments and environment. execve keeps the PID: systemd's main process
 * is the Python daemon itself (Type=notify, NotifyAccess=main and signals unchanged), and
 * `serve` re-executing itself as the bare daemon (daemon/reexec.py) runs the unpacked
 * program directly. PyInstaller's own one-file mode would keep a bootloader as the parent
 * of the Python process and unpack ~125 MB into a new temporary directory on every start.
 *
 * CACHE is $FKLLMPROXY_CACHE (the unit sets it to its CacheDirectory), else
 * $XDG_CACHE_HOME/fkllmproxy, else $HOME/.cache/fkllmproxy. A new build has a new digest,
 * hence its own directory: upgrade and rollback by copying the file never mix two builds.
 *
 * Needs only the C library: zlib is linked in statically.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <zlib.h>

#define MAGIC "FKLLMPK1"
#define DIGEST_LEN 64
#define TRAILER_LEN (8 + 8 + 8 + DIGEST_LEN)
#define PROGRAM "fkllmproxy"
#define COMPLETE ".complete"

static void die(const char *what, const char *detail) {
    fprintf(stderr, "fkllmproxy: %s%s%s%s%s\n", what, detail ? " " : "", detail ? detail : "",
            errno ? ": " : "", errno ? strerror(errno) : "");
    exit(71); /* EX_OSERR */
}

static uint64_t le64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The archive: a zlib stream read from the file between two offsets. */
struct archive {
    int fd;
    off_t next, end;
    z_stream z;
    unsigned char in[1 << 16];
};

static void archive_read(struct archive *a, void *out, size_t length) {
    a->z.next_out = out;
    a->z.avail_out = (uInt)length;
    while (a->z.avail_out > 0) {
        if (a->z.avail_in == 0) {
            size_t want = sizeof a->in;
            if ((off_t)want > a->end - a->next) want = (size_t)(a->end - a->next);
            if (want == 0) { errno = 0; die("the archive inside the program is truncated", NULL); }
            ssize_t got = pread(a->fd, a->in, want, a->next);
            if (got <= 0) die("cannot read the program file", NULL);
            a->next += got;
            a->z.next_in = a->in;
            a->z.avail_in = (uInt)got;
        }
        int status = inflate(&a->z, Z_NO_FLUSH);
        if (status == Z_STREAM_END && a->z.avail_out > 0) {
            errno = 0;
            die("the archive inside the program ended early", NULL);
        }
        if (status != Z_OK && status != Z_STREAM_END && status != Z_BUF_ERROR) {
            errno = 0;
            die("the archive inside the program is corrupt", NULL);
        }
    }
}

static int safe_path(const char *path) {
    if (path[0] == '\0' || path[0] == '/') return 0;
    for (const char *p = path; *p; ) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.') || (n == 1 && p[0] == '.')) return 0;
        p += n + (slash ? 1 : 0);
        if (!slash) break;
    }
    return 1;
}

/* Records: type (d/f/l), mode u32, path length u32, data length u64, path, data; ends with 'e'. */
static void unpack(int fd, off_t start, off_t end, const char *into) {
    static struct archive a;
    memset(&a.z, 0, sizeof a.z);
    a.fd = fd;
    a.next = start;
    a.end = end;
    if (inflateInit(&a.z) != Z_OK) { errno = 0; die("zlib could not start", NULL); }
    char path[PATH_MAX], target[PATH_MAX];
    unsigned char head[1 + 4 + 4 + 8];
    static unsigned char buffer[1 << 16];
    for (;;) {
        archive_read(&a, head, 1);
        if (head[0] == 'e') break;
        archive_read(&a, head + 1, sizeof head - 1);
        mode_t mode = le32(head + 1) & 07777;
        uint32_t path_len = le32(head + 5);
        uint64_t data_len = le64(head + 9);
        size_t prefix = strlen(into) + 1;
        if (path_len == 0 || prefix + path_len >= sizeof path) { errno = 0; die("bad archive entry", NULL); }
        memcpy(path, into, prefix - 1);
        path[prefix - 1] = '/';
        archive_read(&a, path + prefix, path_len);
        path[prefix + path_len] = '\0';
        if (!safe_path(path + prefix)) { errno = 0; die("unsafe archive entry", path + prefix); }
        if (head[0] == 'd') {
            if (mkdir(path, mode | 0700) != 0 && errno != EEXIST) die("cannot create", path);
        } else if (head[0] == 'l') {
            if (data_len >= sizeof target) { errno = 0; die("bad archive link", path); }
            archive_read(&a, target, (size_t)data_len);
            target[data_len] = '\0';
            if (symlink(target, path) != 0) die("cannot create", path);
        } else if (head[0] == 'f') {
            int out = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode | 0400);
            if (out < 0) die("cannot create", path);
            for (uint64_t left = data_len; left > 0; ) {
                size_t n = left < sizeof buffer ? (size_t)left : sizeof buffer;
                archive_read(&a, buffer, n);
                for (size_t done = 0; done < n; ) {
                    ssize_t w = write(out, buffer + done, n - done);
                    if (w < 0) { if (errno == EINTR) continue; die("cannot write", path); }
                    done += (size_t)w;
                }
                left -= n;
            }
            if (close(out) != 0) die("cannot write", path);
        } else {
            errno = 0;
            die("unknown archive entry type in", path);
        }
    }
    inflateEnd(&a.z);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void make_dirs(char *path) {
    for (char *p = path + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) die("cannot create the cache directory", path);
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) die("cannot create the cache directory", path);
}

static void cache_root(char *out, size_t size) {
    const char *explicit = getenv("FKLLMPROXY_CACHE");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (explicit && explicit[0] != '\0' && explicit[0] != '/') {
        errno = 0;
        die("FKLLMPROXY_CACHE must be an absolute path, not", explicit);
    }
    if (explicit && explicit[0] == '/') n = snprintf(out, size, "%s", explicit);
    else if (xdg && xdg[0] == '/') n = snprintf(out, size, "%s/fkllmproxy", xdg);
    else if (home && home[0] == '/') n = snprintf(out, size, "%s/.cache/fkllmproxy", home);
    else { errno = 0; die("set FKLLMPROXY_CACHE to a directory to unpack into (no HOME either)", NULL); }
    if (n < 0 || (size_t)n >= size) { errno = 0; die("the cache path is too long", NULL); }
}

int main(int argc, char **argv, char **envp) {
    (void)argc;
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("cannot open its own file via /proc/self/exe", NULL);
    struct stat st;
    if (fstat(fd, &st) != 0) die("cannot stat its own file", NULL);
    unsigned char trailer[TRAILER_LEN];
    if (st.st_size < TRAILER_LEN || pread(fd, trailer, TRAILER_LEN, st.st_size - TRAILER_LEN) != TRAILER_LEN
        || memcmp(trailer, MAGIC, 8) != 0) {
        errno = 0;
        die("this file carries no program (build it with 'make dist')", NULL);
    }
    off_t start = (off_t)le64(trailer + 8), length = (off_t)le64(trailer + 16);
    if (start < 0 || length <= 0 || start + length > st.st_size - TRAILER_LEN) {
        errno = 0;
        die("the program's trailer is corrupt", NULL);
    }
    char digest[DIGEST_LEN + 1];
    memcpy(digest, trailer + 24, DIGEST_LEN);
    digest[DIGEST_LEN] = '\0';
    for (int i = 0; i < DIGEST_LEN; i++) {
        if (!strchr("0123456789abcdef", digest[i])) { errno = 0; die("the program's trailer is corrupt", NULL); }
    }

    char root[PATH_MAX - 128], dir[PATH_MAX], program[PATH_MAX], marker[PATH_MAX];
    cache_root(root, sizeof root);
    snprintf(dir, sizeof dir, "%s/fkllmproxy-%.16s", root, digest);
    snprintf(program, sizeof program, "%s/" PROGRAM, dir);
    snprintf(marker, sizeof marker, "%s/" COMPLETE, dir);
    if (access(marker, F_OK) != 0) {
        make_dirs(root);
        char staging[PATH_MAX];
        snprintf(staging, sizeof staging, "%s/.unpacking-%.16s-%ld", root, digest, (long)getpid());
        nftw(staging, remove_entry, 16, FTW_DEPTH | FTW_PHYS); /* a leftover of a reused PID */
        if (mkdir(staging, 0700) != 0) die("cannot create", staging);
        unpack(fd, start, start + length, staging);
        char done[PATH_MAX];
        snprintf(done, sizeof done, "%s/" COMPLETE, staging);
        int m = open(done, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (m < 0 || close(m) != 0) die("cannot create", done);
        if (chmod(staging, 0755) != 0) die("cannot chmod", staging);
        if (rename(staging, dir) != 0) {
            if (errno != EEXIST && errno != ENOTEMPTY) die("cannot move into place", dir);
            nftw(staging, remove_entry, 16, FTW_DEPTH | FTW_PHYS); /* another start won */
        }
    }
    close(fd);
    execve(program, argv, envp);
    die("cannot execute", program);
    return 71;
}
