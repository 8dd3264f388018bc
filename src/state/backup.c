/*
 * backup.c: hk_store_backup, a hot and compacted copy of the store that is
 * a data directory of its own. The copy is LMDB's (kv.c's hk_kv_copy: one
 * read transaction, so a running server goes on writing); around it, the
 * directory is built under a temporary name beside the target, synced, and
 * renamed into place, so that a crash leaves either nothing or a whole
 * backup under the target's name (and at worst a "NAME.partial-XXXXXX"
 * directory beside it).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "tables.h"

/* Syncs a directory, so that what was created or renamed in it lasts. */
static int sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* The directory path is in ("." for a bare name), into parent. */
static void parent_of(const char *path, char *parent, size_t len)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(parent, len, ".");
    else if (slash == path)
        snprintf(parent, len, "/");
    else
        snprintf(parent, len, "%.*s", (int)(slash - path), path);
}

/* Renames from to to unless to exists (a backup is never put over anything). */
static int rename_new(const char *from, const char *to)
{
    if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -errno;
    /* A file system without RENAME_NOREPLACE: check, then rename (an empty directory made in between is lost). */
    struct stat st;
    if (lstat(to, &st) == 0)
        return -EEXIST;
    return rename(from, to) == 0 ? 0 : -errno;
}

/* A failed system call's errno as the store's code. */
static int code_of(int e)
{
    return e == EEXIST ? HK_EEXIST : e == ENOSPC || e == EDQUOT ? HK_EFULL : HK_ESTORE;
}

int hk_store_backup(hk_store *s, const char *path)
{
    char tmp[PATH_MAX], file[PATH_MAX + 16], parent[PATH_MAX];
    struct stat st;
    const char *step = NULL; /* the system call that failed, for the message */
    int fd = -1, rc = 0, e = 0;
    if (path == NULL || path[0] == '\0' || snprintf(tmp, sizeof(tmp), "%s.partial-XXXXXX", path) >= (int)sizeof(tmp))
        return HK_EINVAL;
    if (hk_store_is_cluster(s)) {
        hk_error("backup: in cluster mode the state is the cluster's database: back it up with PostgreSQL's tools "
                 "(pg_dump, pg_basebackup)");
        return UV_ENOTSUP;
    }
    if (lstat(path, &st) == 0) {
        hk_error("backup: %s exists; a backup is written only under a new name", path);
        return HK_EEXIST;
    }
    parent_of(path, parent, sizeof(parent));
    if (mkdtemp(tmp) == NULL) {
        e = errno;
        hk_error("backup: cannot create a directory beside %s: %s", path, strerror(e));
        return code_of(e);
    }
    snprintf(file, sizeof(file), "%s/data.mdb", tmp);
    fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        e = errno, step = "create";
        goto fail;
    }
    if ((rc = hk_kv_copy(hk__store_kv(s), fd)) != 0)
        goto fail;
    if (fsync(fd) != 0) {
        e = errno, step = "sync";
        goto fail;
    }
    rc = close(fd);
    fd = -1;
    if (rc != 0) {
        e = errno, step = "write";
        goto fail;
    }
    if ((e = -sync_dir(tmp)) != 0) {
        step = "sync";
        goto fail;
    }
    if ((e = -rename_new(tmp, path)) != 0) {
        step = "rename it to";
        goto fail;
    }
    /* The backup is whole under its name; a failure here only risks that name after a crash. */
    if ((e = -sync_dir(parent)) != 0)
        hk_warn("backup: cannot sync %s: %s", parent, strerror(e));
    return 0;

fail:
    if (e != 0) {
        hk_error("backup: cannot %s %s: %s", step, e == EEXIST ? path : file,
                 e == EEXIST ? "it was created meanwhile" : strerror(e));
        rc = code_of(e);
    }
    if (fd >= 0)
        close(fd);
    unlink(file);
    rmdir(tmp);
    return rc;
}
