using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using ModelCar.Common.IO;

namespace ModelCar.Packing;

/// <summary>
/// The sha256 of each model file, for the layers' provenance annotations: taken from hf-fetch's
/// verified record (snapshot.json lists the sha256 of every LFS file it verified, with its size) when
/// the file still has that size, else computed here. Computing is a second read of that file (the
/// layer writer reads it once more), so it is done only for files without a record — with hf-fetch
/// downloads these are the small git-stored files (config, tokenizer), not the weights.
/// </summary>
public static partial class FileDigests
{
    /// <summary>Full source path → sha256 (64 lowercase hex digits).</summary>
    public static async Task<IReadOnlyDictionary<string, string>> CollectAsync(ModelTree tree, HfSnapshot? snapshot, int jobs, ILogger logger, CancellationToken ct)
    {
        var recorded = (snapshot?.Files ?? [])
            .Where(f => f.Path is not null && f.Sha256 is { } s && Sha256Hex().IsMatch(s))
            .GroupBy(f => f.Path!, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var result = new System.Collections.Concurrent.ConcurrentDictionary<string, string>(StringComparer.Ordinal);
        var toHash = new List<ModelEntry>();
        foreach (var e in tree.Entries.Where(e => e.Kind == ModelEntryKind.File))
        {
            if (recorded.TryGetValue(e.RelativePath, out var r) && r.Size == e.Size)
            {
                result[e.FullPath] = r.Sha256!.ToLowerInvariant();
            }
            else
            {
                toHash.Add(e);
            }
        }
        if (toHash.Count > 0)
        {
            long bytes = toHash.Sum(e => e.Size);
            logger.LogInformation("hashing {Count} model file(s) without an hf-fetch sha256 record ({Size}) for the layer annotations: a second read of these files",
                toHash.Count, SizeParser.Format(bytes));
            await Parallel.ForEachAsync(toHash.OrderByDescending(e => e.Size), new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, jobs), CancellationToken = ct }, async (e, token) =>
            {
                await using var stream = new FileStream(e.FullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.Asynchronous | FileOptions.SequentialScan);
                var hash = await SHA256.HashDataAsync(stream, token).ConfigureAwait(false);
                result[e.FullPath] = Convert.ToHexStringLower(hash);
            }).ConfigureAwait(false);
        }
        logger.LogDebug("file sha256: {Recorded} from hf-fetch's record, {Computed} computed", result.Count - toHash.Count, toHash.Count);
        return result;
    }

    [GeneratedRegex("^[0-9a-fA-F]{64}$")]
    private static partial Regex Sha256Hex();
}
