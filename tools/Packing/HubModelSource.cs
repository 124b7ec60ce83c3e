using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using ModelCar.Common;
using ModelCar.HuggingFace;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;

/// <summary>A parsed <c>hf://ORG/NAME[@REVISION]</c> model reference.</summary>
public sealed record HubModelReference(string RepoId, string? Revision)
{
    public const string Scheme = "hf://";

    public static bool IsHubReference(string text) => text.StartsWith(Scheme, StringComparison.Ordinal);

    /// <summary>Parses hf://ORG/NAME[@REVISION]; a bad one is a <see cref="PackingInputException"/> (the message starts with the text).</summary>
    public static HubModelReference Parse(string text)
    {
        var rest = text[Scheme.Length..];
        int at = rest.IndexOf('@');
        var id = at < 0 ? rest : rest[..at];
        var revision = at < 0 ? null : rest[(at + 1)..];
        if (revision is not null && (revision.Length == 0 || revision.Any(char.IsControl)))
        {
            throw new PackingInputException($"'{text}': the revision after '@' is empty");
        }
        try
        {
            HubPaths.ValidateRepoId(id);
        }
        catch (HubInputException e)
        {
            throw new PackingInputException($"'{text}': {e.Message}", e);
        }
        return new HubModelReference(id, revision);
    }
}

/// <summary>
/// A Hub repository at one commit as the model of an image, without a copy on disk: the revision is resolved to
/// a commit once, the tree listing at that commit gives every file's size and sha256 (LFS) or git blob sha1, so
/// the layer plan is made before any byte is read (the same plan as a local directory of the same files), and
/// each layer's file segments are read from the Hub (<see cref="HubFile"/>: resumed with Range, verified as they
/// flow; a mismatch is a <see cref="SourceCorruptedException"/>, so the layer is abandoned and read once more, that
/// file from a new signed URL over a new connection).
/// Each file's <see cref="ModelEntry.FullPath"/> is its identity — repo, commit, path and hash — which is what
/// the layer record keys on: an unchanged re-run reads nothing.
/// </summary>
public sealed class HubModelSource : ILayerFileSource
{
    private readonly Dictionary<string, HubFile> _files;

    /// <summary>Files whose body failed its hash: their next read from the start goes over a new connection.</summary>
    private readonly ConcurrentDictionary<HubFile, bool> _corrupted = new();
    private long _received;

    private HubModelSource(HubModelReference reference, RepoType type, string commit, string endpoint, ModelTree tree, Dictionary<string, HubFile> files)
    {
        Reference = reference;
        RepoType = type;
        Commit = commit;
        Endpoint = endpoint;
        Tree = tree;
        _files = files;
    }

    public HubModelReference Reference { get; }
    public RepoType RepoType { get; }
    public string Commit { get; }
    public string Endpoint { get; }
    public ModelTree Tree { get; }

    /// <summary>Bytes received from the Hub so far (including a refetch).</summary>
    public long Received => Interlocked.Read(ref _received);

    /// <summary>Per file: bytes received from the Hub (for the per-file log line).</summary>
    public ConcurrentDictionary<string, long> ReceivedPerFile { get; } = new(StringComparer.Ordinal);

    public static async Task<HubModelSource> OpenAsync(HubClient client, HubModelReference reference, RepoType type, PathFilter filter, ILogger logger, CancellationToken ct)
    {
        // the local root only validates the paths (no .., no absolute paths) as hf-fetch does: nothing is written
        var selection = await HubSelection.ResolveAsync(client, type, reference.RepoId, reference.Revision ?? "main", filter.IsIncluded, "/nonexistent-hub-root", logger, ct).ConfigureAwait(false);
        if (selection.EmptyReason(reference.RepoId) is { } empty)
        {
            throw new PackingException(empty, reason: selection.PatternsSelectedNone ? PackingReason.NoFileMatchesFilter : null);
        }
        var commit = selection.Commit;
        var root = $"{HubModelReference.Scheme}{reference.RepoId}@{commit}";
        var files = new Dictionary<string, HubFile>(StringComparer.Ordinal);
        var entries = new List<ModelEntry>();
        foreach (var plan in selection.Plans)
        {
            // the identity the layer record keys on: repo, commit, path and the listing's hash
            var identity = $"{root}/{plan.RepoPath}#{(plan.Kind == HashKind.Sha256 ? "sha256" : "gitsha1")}:{plan.Hash}";
            files[identity] = HubFile.At(client, type, reference.RepoId, commit, plan, logger);
            entries.Add(new ModelEntry(plan.RepoPath, ModelEntryKind.File, identity, plan.Size, null));
        }
        return new HubModelSource(reference, type, commit, client.Endpoint, ModelTree.FromFiles(root, entries), files);
    }

    /// <summary>The same annotations hf-fetch's snapshot gives <c>oci-pack --model DIR</c> (source, revision = commit).</summary>
    public IEnumerable<KeyValuePair<string, string>> Annotations() => new HfSnapshot
    {
        RepoId = Reference.RepoId,
        RepoType = HubPaths.TypeName(RepoType),
        Revision = Reference.Revision ?? "main",
        Commit = Commit,
        Endpoint = ModelCar.Common.Logging.Redactor.PublicUrl(Endpoint),
    }.Annotations();

    public Stream Open(LayerEntry entry, long offset, CancellationToken ct)
    {
        var file = _files.GetValueOrDefault(entry.SourcePath ?? string.Empty)
            ?? throw new ArgumentException($"{entry.TarPath}: not a file of {Tree.Root}");
        if (offset == 0 && _corrupted.TryRemove(file, out _))
        {
            file.UseNewConnection(); // the refetch after a bad body: a new signed URL over a new connection
        }
        else if (offset == 0)
        {
            file.ForgetRedirect(); // a read from the start: a new signed URL, a new request
        }
        return new Verified(file.OpenAt(offset, n =>
        {
            Interlocked.Add(ref _received, n);
            ReceivedPerFile.AddOrUpdate(file.RepoPath, n, (_, v) => v + n);
        }, ct), file, f => _corrupted[f] = true);
    }

    /// <summary>Maps the Hub file's hash mismatch to the layer-level <see cref="SourceCorruptedException"/>.</summary>
    private sealed class Verified(Stream inner, HubFile file, Action<HubFile> corrupted) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => Map(() => inner.Read(buffer, offset, count));

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            try
            {
                return await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            catch (HashMismatchException e)
            {
                throw Corrupted(e);
            }
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private int Map(Func<int> read)
        {
            try
            {
                return read();
            }
            catch (HashMismatchException e)
            {
                throw Corrupted(e);
            }
        }

        private SourceCorruptedException Corrupted(HashMismatchException e)
        {
            corrupted(file);
            return new($"{file.RepoPath}: {file.Plan.HashName} mismatch: expected {file.Plan.Hash} (the tree listing), got {e.Actual}", file.RepoPath, file.Plan.Hash, e.Actual);
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
