using System.Text.Json;
using Microsoft.Extensions.Logging;
using ModelCar.Common.IO;

namespace ModelCar.HuggingFace;

/// <summary>Byte counts of a partial file, one per chunk, updated as bytes reach the file.</summary>
internal sealed class ChunkState
{
    public ChunkState(long size, long chunkSize, long[]? written = null)
    {
        Size = size;
        ChunkSize = Math.Max(1, chunkSize);
        int count = size == 0 ? 0 : (int)((size + ChunkSize - 1) / ChunkSize);
        Written = written is { } w && w.Length == count ? w : new long[count];
    }

    public long Size { get; }
    public long ChunkSize { get; }
    public long[] Written { get; }
    public int Count => Written.Length;

    public long Start(int i) => i * ChunkSize;

    public long Length(int i) => Math.Min(ChunkSize, Size - Start(i));

    public long Done(int i) => Volatile.Read(ref Written[i]);

    public bool IsComplete(int i) => Done(i) >= Length(i);

    public long Total => Enumerable.Range(0, Count).Sum(Done);

    public bool AllComplete => Enumerable.Range(0, Count).All(IsComplete);

    /// <summary>End of the contiguous prefix of bytes on disk (what the in-order hash may read).</summary>
    public long Frontier()
    {
        long f = 0;
        for (int i = 0; i < Count; i++)
        {
            long d = Done(i);
            f += d;
            if (d < Length(i))
            {
                break;
            }
        }
        return f;
    }
}

/// <summary>
/// The on-disk side of one download: the preallocated DIR/.hf-fetch/incomplete/HASH.incomplete and its sidecar
/// (per-chunk byte counts, commit, hash, size), so a killed run resumes where it stopped; the rename to the final
/// path is the caller's, after verification.
/// </summary>
internal sealed class PartialFile(LocalState store, FilePlan plan, string commit, ILogger logger)
{
    private readonly object _gate = new();

    public string Incomplete { get; } = store.IncompletePath(plan.RepoPath);

    public string Sidecar { get; } = store.SidecarPath(plan.RepoPath);

    /// <summary>Serializes sidecar writes with the final rename (a timer saves while chunks run).</summary>
    public object Gate => _gate;

    /// <summary>The saved state when it belongs to this file at this commit and the partial file is intact; else a fresh one.</summary>
    public ChunkState LoadOrCreate(long chunkSize, out bool resumed)
    {
        resumed = false;
        try
        {
            store.AdoptLegacyPartial(plan.RepoPath);
            if (File.Exists(Sidecar) && File.Exists(Incomplete) && new FileInfo(Incomplete).Length == plan.Size)
            {
                var saved = JsonSerializer.Deserialize(File.ReadAllBytes(Sidecar), HubJson.Partial);
                if (saved is not null && saved.Commit == commit && saved.Hash == plan.Hash && saved.Size == plan.Size && saved.ChunkSize > 0)
                {
                    var state = new ChunkState(plan.Size, saved.ChunkSize, saved.Written);
                    if (state.Written == saved.Written && Enumerable.Range(0, state.Count).All(i => state.Done(i) >= 0 && state.Done(i) <= state.Length(i)))
                    {
                        resumed = state.Total > 0;
                        return state;
                    }
                }
            }
        }
        catch (Exception e) when (e is JsonException or IOException)
        {
            // unreadable sidecar (or an old partial that cannot be moved): start over
        }
        return Reset(chunkSize);
    }

    /// <summary>A fresh, preallocated .incomplete file (fallocate: a full disk fails here, not half way).</summary>
    public ChunkState Reset(long chunkSize)
    {
        var state = new ChunkState(plan.Size, chunkSize);
        Files.EnsureDirectory(Path.GetDirectoryName(Incomplete)!);
        Files.TryDelete(Sidecar);
        using (var created = File.OpenHandle(Incomplete, FileMode.Create, FileAccess.ReadWrite, FileShare.Read, FileOptions.None, plan.Size))
        {
            RandomAccess.SetLength(created, plan.Size); // preallocation keeps length 0; resume checks the length
        }
        Files.SetMode(Incomplete, Files.FileMode644);
        Save(state);
        return state;
    }

    public void Delete()
    {
        lock (_gate)
        {
            Files.TryDelete(Incomplete);
            Files.TryDelete(Sidecar);
        }
    }

    public void Save(ChunkState state)
    {
        var partial = new PartialState
        {
            Path = plan.RepoPath,
            Commit = commit,
            Hash = plan.Hash,
            Size = plan.Size,
            ChunkSize = state.ChunkSize,
            Written = Enumerable.Range(0, state.Count).Select(state.Done).ToArray(),
        };
        lock (_gate)
        {
            if (File.Exists(Incomplete))
            {
                // temp + rename, no fsync: it must survive a killed process, not a power cut (the hash catches that)
                var tmp = Sidecar + ".tmp";
                File.WriteAllBytes(tmp, JsonSerializer.SerializeToUtf8Bytes(partial, HubJson.Partial));
                File.Move(tmp, Sidecar, overwrite: true);
            }
        }
    }

    public void TrySave(ChunkState state)
    {
        try
        {
            Save(state);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            logger.LogDebug("{Path}: could not save resume state: {Why}", plan.RepoPath, e.Message);
        }
    }

    /// <summary>Moves the verified file to its final path and forgets the resume state.</summary>
    public void Complete(string finalPath)
    {
        lock (_gate)
        {
            File.Move(Incomplete, finalPath, overwrite: true);
            Files.TryDelete(Sidecar);
        }
    }
}
