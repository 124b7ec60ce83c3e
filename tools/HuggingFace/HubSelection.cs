using Microsoft.Extensions.Logging;
using ModelCar.Common.IO;

namespace ModelCar.HuggingFace;

/// <summary>
/// The files of a repo a run works on: the revision resolved to a commit once, the tree listed at that commit,
/// filtered, in path order, each validated as a <see cref="FilePlan"/>; and the duplicate-weights warning. hf-fetch
/// (<see cref="SnapshotFetcher"/>) and oci-pack's <c>hf://</c> source both start here.
/// </summary>
public sealed record HubSelection(string Commit, IReadOnlyList<TreeEntry> Listing, IReadOnlyList<FilePlan> Plans)
{
    /// <summary>Why <see cref="Plans"/> is empty (the repo has no files, or the patterns left none); null when it is not.</summary>
    public string? EmptyReason(string repoId) => Plans.Count > 0
        ? null
        : Listing.Count == 0
            ? $"{repoId}@{Commit} has no files"
            : $"no file of {repoId}@{Commit} matches the include/exclude patterns ({Listing.Count(e => e.IsFile)} files in the repo)";

    /// <summary>True when the repo has files but the patterns selected none (a hint about the patterns applies).</summary>
    public bool PatternsSelectedNone => Plans.Count == 0 && Listing.Count > 0;

    /// <param name="include">Which repo paths to keep (the caller's filter).</param>
    /// <param name="localRoot">Where the files would be written (paths are validated against it either way).</param>
    public static async Task<HubSelection> ResolveAsync(HubClient client, RepoType type, string repoId, string revision,
        Func<string, bool> include, string localRoot, ILogger logger, CancellationToken ct)
    {
        var commit = await client.ResolveRevisionAsync(type, repoId, revision, ct).ConfigureAwait(false);
        logger.LogInformation("{Repo}@{Revision} is commit {Commit}", repoId, revision, commit);
        var listing = await client.ListTreeAsync(type, repoId, commit, ct).ConfigureAwait(false);
        var plans = listing.Where(e => e.IsFile && include(e.Path))
            .OrderBy(e => e.Path, StringComparer.Ordinal)
            .Select(e => FilePlan.From(e, localRoot))
            .ToList();
        foreach (var dup in DuplicateWeights.Find(plans.Select(p => p.RepoPath)))
        {
            logger.LogWarning("{Repo}: the selection holds the sharded Hugging Face weights and {What} ({Count} files, {Size}, e.g. {Example}): "
                + "the same weights twice; exclude '{Pattern}' to avoid it",
                repoId, dup.Description, dup.Files.Count, SizeParser.Format(plans.Where(p => dup.Files.Contains(p.RepoPath)).Sum(p => p.Size)), dup.Files[0], dup.ExcludePattern);
        }
        return new HubSelection(commit, listing, plans);
    }
}
