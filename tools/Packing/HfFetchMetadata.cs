using ModelCar.HuggingFace;

namespace ModelCar.Packing;

/// <summary>
/// What hf-fetch left in <c>DIR/.hf-fetch/</c>, as oci-pack uses it. The format has one owner, the HuggingFace
/// library (<see cref="LocalState"/>, <see cref="SnapshotMetadata"/>): this reads through it and adds oci-pack's
/// questions (finished? which annotations? which sha256 can be taken without hashing?).
/// </summary>
public sealed record HfSnapshot
{
    public string? RepoId { get; init; }
    public string? RepoType { get; init; }
    public string? Revision { get; init; }
    public string? Commit { get; init; }
    public string? Endpoint { get; init; }
    public IReadOnlyList<SnapshotFile>? Files { get; init; }

    /// <summary>The snapshot's path relative to the model directory, for messages.</summary>
    public static readonly string RelativePath = HubPaths.StateFolder + "/" + LocalState.SnapshotFileName;

    /// <summary>
    /// Null if <paramref name="modelDir"/> is no hf-fetch download or a finished one; else why it is not
    /// finished. hf-fetch deletes snapshot.json when a run starts and writes it when every file verified,
    /// so: no snapshot.json (a run still going, killed or failed: N = files verified so far, M = N + partial
    /// files), or files it lists that are missing or of another size (deleted since). Files the filter
    /// leaves out of the image do not count.
    /// </summary>
    public static string? IncompleteReason(string modelDir, HfSnapshot? snapshot, PathFilter filter)
    {
        var state = new LocalState(modelDir);
        if (!Directory.Exists(state.StateDir))
        {
            return null;
        }
        if (snapshot is not null)
        {
            var listed = (snapshot.Files ?? []).Where(f => filter.IsIncluded(f.Path)).ToList();
            var missing = listed.Where(f => new FileInfo(Path.Combine(modelDir, f.Path)) is not { Exists: true } fi || fi.Length != f.Size).ToList();
            return missing.Count == 0
                ? null
                : $"{listed.Count - missing.Count} of {listed.Count} files ('{missing[0].Path}' is missing or of another size than the {missing[0].Size} bytes snapshot.json lists)";
        }
        var verified = state.RecordedVerifiedPaths().Where(path => filter.IsIncluded(path) && File.Exists(Path.Combine(modelDir, path))).Count();
        int partial = state.PartialDownloadCount();
        return $"{verified} of {verified + partial} files ({RelativePath} is missing: hf-fetch has not finished)";
    }

    /// <summary>Reads the snapshot if the model directory has one; a present but broken file is an error.</summary>
    public static HfSnapshot? TryRead(string modelDir)
    {
        var state = new LocalState(modelDir);
        SnapshotMetadata? read;
        try
        {
            read = state.ReadSnapshot();
        }
        catch (HubException e)
        {
            throw new PackingException($"'{state.SnapshotPath}' is not valid hf-fetch metadata: {e.Message}", e);
        }
        return read is null ? null : new HfSnapshot
        {
            RepoId = read.RepoId,
            RepoType = read.RepoType,
            Revision = read.Revision,
            Commit = read.Commit,
            Endpoint = read.Endpoint,
            Files = read.Files,
        };
    }

    /// <summary>org.opencontainers.image.source / .revision from the snapshot.</summary>
    public IEnumerable<KeyValuePair<string, string>> Annotations()
    {
        if (!string.IsNullOrEmpty(RepoId))
        {
            // the annotation is public (anyone who can pull reads it): no user-info or query from the URL
            var endpoint = string.IsNullOrEmpty(Endpoint) ? "https://huggingface.co" : ModelCar.Common.Logging.Redactor.PublicUrl(Endpoint).TrimEnd('/');
            var prefix = RepoType switch
            {
                "dataset" => "/datasets",
                "space" => "/spaces",
                _ => string.Empty,
            };
            yield return new(Oci.Annotations.Source, $"{endpoint}{prefix}/{RepoId}");
        }
        if (!string.IsNullOrEmpty(Commit))
        {
            yield return new(Oci.Annotations.Revision, Commit);
        }
    }

    /// <summary>
    /// The sha256 hf-fetch verified for the files of <paramref name="tree"/> (LFS files listed with the size
    /// they still have), by full source path: oci-pack checks each against the hash it takes while packing.
    /// </summary>
    public IReadOnlyDictionary<string, string> VerifiedSha256(ModelTree tree) => Verified(tree, identityToo: false);

    /// <summary>
    /// The part of <see cref="VerifiedSha256"/> oci-pack takes without hashing: files whose identity in the scan
    /// (size, mtime, inode) is the one hf-fetch recorded when it verified them, i.e. not written since (as far as a
    /// stat can tell: the layer record's rule). A touched, replaced or copied file is hashed and checked instead.
    /// </summary>
    public IReadOnlyDictionary<string, string> TrustedSha256(ModelTree tree) => Verified(tree, identityToo: true);

    private Dictionary<string, string> Verified(ModelTree tree, bool identityToo)
    {
        var listed = (Files ?? [])
            .Where(f => f.Sha256 is { Length: 64 } s && s.All(char.IsAsciiHexDigit))
            .GroupBy(f => f.Path, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in tree.Entries.Where(e => e.Kind == ModelEntryKind.File))
        {
            if (listed.TryGetValue(e.RelativePath, out var f) && f.Size == e.Size
                && (!identityToo || (f.MtimeTicks is { } ticks && e.ModifiedUtc?.Ticks == ticks && f.Inode is { } inode && inode != 0 && inode == e.Inode)))
            {
                result[e.FullPath] = f.Sha256!.ToLowerInvariant();
            }
        }
        return result;
    }
}
