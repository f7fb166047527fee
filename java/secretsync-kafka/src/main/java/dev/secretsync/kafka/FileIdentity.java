package dev.secretsync.kafka;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.BasicFileAttributes;
import java.nio.file.attribute.FileTime;
import java.util.Objects;

/**
 * What a file is at one instant: its inode (the file key: device and inode on Linux), size
 * and modification time. secretsync replaces a file by renaming a new one over it, so every
 * rewrite changes the inode; size and mtime catch writers that rewrite in place.
 */
final class FileIdentity {
    private final Object key;
    private final long size;
    private final FileTime modified;

    private FileIdentity(Object key, long size, FileTime modified) {
        this.key = key;
        this.size = size;
        this.modified = modified;
    }

    /** The identity of {@code path} now (symbolic links followed). */
    static FileIdentity of(Path path) throws IOException {
        BasicFileAttributes attrs = Files.readAttributes(path, BasicFileAttributes.class);
        if (!attrs.isRegularFile()) {
            throw new IOException("not a regular file");
        }
        return new FileIdentity(attrs.fileKey(), attrs.size(), attrs.lastModifiedTime());
    }

    long size() {
        return size;
    }

    @Override
    public boolean equals(Object other) {
        if (this == other) {
            return true;
        }
        if (!(other instanceof FileIdentity)) {
            return false;
        }
        FileIdentity that = (FileIdentity) other;
        return size == that.size && Objects.equals(key, that.key) && modified.equals(that.modified);
    }

    @Override
    public int hashCode() {
        return Objects.hash(key, size, modified);
    }
}
