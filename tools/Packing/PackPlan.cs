using System.Globalization;
using System.Text;
using ModelCar.Common.IO;
using ModelCar.Oci;
using ModelCar.Oci.Tar;
using ModelCar.Registry;

namespace ModelCar.Packing;

/// <summary>The kind of an output a pack plan looks at.</summary>
public enum PlanOutputKind
{
    Layout,
    Archive,
    Registry,
}

/// <summary>
/// One output of a pack, as a dry run sees it: a layout directory or archive file (what it holds is
/// found with stat, free space from its file system) or a registry repository (found with HEAD).
/// </summary>
public sealed record PlanOutput(string Description, PlanOutputKind Kind, string? LocalPath = null, RegistryRepository? Repository = null)
{
    public static PlanOutput Layout(string description, string dir) => new(description, PlanOutputKind.Layout, Path.GetFullPath(dir));

    public static PlanOutput Archive(string description, string file) => new(description, PlanOutputKind.Archive, Path.GetFullPath(file));

    public static PlanOutput Registry(string description, RegistryRepository repository) => new(description, PlanOutputKind.Registry, Repository: repository);
}

/// <summary>A blob of the image whose size (and, where known, digest) is known before packing.</summary>
/// <param name="What">"base layer" or the model layer's title.</param>
/// <param name="Digest">Null for a model layer the layer record does not know: its digest exists only once it is read.</param>
public sealed record PlannedBlob(string What, Digest? Digest, long Size, bool IsModelLayer);

/// <summary>What one output already has and what the pack would send or write to it.</summary>
public sealed record PlannedOutputState(PlanOutput Output, IReadOnlyList<(PlannedBlob Blob, bool Present)> Blobs, bool Exists, long? FreeBytes)
{
    /// <summary>
    /// Blobs a registry output lacks but would get by a cross-repository mount (no byte sent), with the repository on the same
    /// host they come from: base layers from the base's repository, and what another output on that host gets first.
    /// </summary>
    public IReadOnlyDictionary<Digest, string> Mounts { get; init; } = new Dictionary<Digest, string>();

    public long BytesToSend => Blobs.Where(b => !b.Present && !IsMounted(b.Blob)).Sum(b => b.Blob.Size);

    public int BlobsPresent => Blobs.Count(b => b.Present);

    public int BlobsMounted => Blobs.Count(b => !b.Present && IsMounted(b.Blob));

    public bool IsMounted(PlannedBlob blob) => blob.Digest is { } d && Mounts.ContainsKey(d);
}

/// <summary>
/// The plan of one pack, made without reading a model byte, writing a file or opening an upload:
/// the files and the layers they go into (as <see cref="Packer.Plan"/> makes them), the platforms,
/// per output which blobs it already holds (HEAD for registries, stat for layouts; an archive is
/// written anew), the bytes that would be sent or written, and every limit the real run checks
/// before it starts (largest blob, free space for layouts and archives). <see cref="Problems"/>
/// lists what would stop the real run, the first one first.
/// </summary>
public sealed class PackPlan
{
    /// <summary>Files listed per layer in <see cref="Render"/>; the rest are counted.</summary>
    public const int FilesListedPerLayer = 20;

    /// <summary>Room kept free beside the bytes a local output needs: index, manifests, config and temp files.</summary>
    public const long LocalSlackBytes = 1L << 20;

    private PackPlan(ModelTree tree, string source, IReadOnlyList<BaseImage> bases, IReadOnlyList<LayerPlan> layers, IReadOnlyList<Digest?> known,
        IReadOnlyList<PlannedBlob> baseBlobs, IReadOnlyList<PlannedOutputState> outputs, long? maxBlobSize, IReadOnlyList<string> problems, IReadOnlyList<string> notes, int? maxLayers)
    {
        MaxLayers = maxLayers;
        Tree = tree;
        Source = source;
        Bases = bases;
        Layers = layers;
        KnownDigests = known;
        BaseBlobs = baseBlobs;
        Outputs = outputs;
        MaxBlobSize = maxBlobSize;
        Problems = problems;
        Notes = notes;
    }

    public ModelTree Tree { get; }

    public string Source { get; }

    public IReadOnlyList<BaseImage> Bases { get; }

    public IReadOnlyList<LayerPlan> Layers { get; }

    /// <summary>Per layer of <see cref="Layers"/>: its digest from the layer record, or null (it will be read).</summary>
    public IReadOnlyList<Digest?> KnownDigests { get; }

    public IReadOnlyList<PlannedBlob> BaseBlobs { get; }

    public IReadOnlyList<PlannedOutputState> Outputs { get; }

    public long? MaxBlobSize { get; }

    /// <summary>The image's layer budget (base and model layers together), when one applies.</summary>
    public int? MaxLayers { get; }

    /// <summary>Layers of the image with the most base layers: the number the budget holds.</summary>
    public int ImageLayers => Bases.Max(b => b.Layers.Count) + Layers.Count;

    /// <summary>What would stop the real run (empty: it would start).</summary>
    public IReadOnlyList<string> Problems { get; }

    /// <summary>What the real run would only warn about.</summary>
    public IReadOnlyList<string> Notes { get; }

    /// <summary>Model bytes the real run would read: layers whose digest is unknown, or missing from an output.</summary>
    public long ModelBytesToRead => Layers.Select((l, i) => (l, i))
        .Where(x => KnownDigests[x.i] is null || Outputs.Any(o => o.Blobs.Any(b => b.Blob.IsModelLayer && b.Blob.Digest == KnownDigests[x.i] && !b.Present)))
        .Sum(x => x.l.ModelBytes);

    /// <summary>
    /// Makes the plan. <paramref name="freeBytes"/> gives the free bytes of the file system a path is (or
    /// would be) on (default: <see cref="DriveInfo"/> of its nearest existing folder); registry outputs are
    /// asked with HEAD only. <paramref name="maxLayers"/> is the layer budget the plan was made for (printed);
    /// <paramref name="baseRepository"/> the registry host and repository of the base, when it is in one: a registry output
    /// on that host that lacks a base layer gets it by a cross-repository mount, as the real run does, not by sending it.
    /// </summary>
    public static async Task<PackPlan> CreateAsync(ModelTree tree, string source, IReadOnlyList<BaseImage> bases, IReadOnlyList<LayerPlan> layers,
        LayerDigestRecord? record, IReadOnlyList<PlanOutput> outputs, long? maxBlobSize, CancellationToken ct, Func<string, long?>? freeBytes = null,
        int? maxLayers = null, (string Host, string Repository)? baseRepository = null)
    {
        freeBytes ??= FreeBytesAt;
        var problems = new List<string>();
        var notes = new List<string>();
        var baseBlobs = bases.SelectMany(b => b.Layers).DistinctBy(l => l.Digest)
            .Select(l => new PlannedBlob("base layer", l.Digest, l.Size, IsModelLayer: false)).ToList();
        var known = layers.Select(l => record?.Get(l.Key)?.Digest).ToList();
        var modelBlobs = layers.Select((l, i) => new PlannedBlob(l.Title, known[i], l.TarSize, IsModelLayer: true)).ToList();
        var blobs = baseBlobs.Concat(modelBlobs).ToList();

        if (maxBlobSize is { } max)
        {
            foreach (var b in blobs.Where(b => b.Size > max))
            {
                problems.Add(b.IsModelLayer
                    ? $"layer {b.What} would be {SizeParser.Format(b.Size)} ({b.Size} bytes), over the maximum blob size {SizeParser.Format(max)} ({max} bytes)"
                    : $"base layer {b.Digest} is {SizeParser.Format(b.Size)} ({b.Size} bytes), over the maximum blob size {SizeParser.Format(max)} ({max} bytes)");
            }
        }
        foreach (var big in Packer.OverQuayDefaultLimit(layers))
        {
            notes.Add($"layer {big.Title} will be {SizeParser.Format(big.TarSize)} ({big.TarSize} bytes), over quay's default MAXIMUM_LAYER_SIZE 20G ({Packer.QuayDefaultMaxLayerBytes} bytes): quay would refuse it");
        }

        var states = new List<PlannedOutputState>();
        // per registry host, the first output on it: the real run sends each blob once per host and mounts it into the others
        var firstOnHost = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var output in outputs)
        {
            var present = new List<(PlannedBlob, bool)>();
            var mounts = new Dictionary<Digest, string>();
            bool exists;
            long? free = null;
            switch (output.Kind)
            {
                case PlanOutputKind.Registry:
                    exists = true;
                    var host = output.Repository!.Client.Registry;
                    var first = firstOnHost.TryAdd(host, output.Repository.Name) ? null : firstOnHost[host];
                    foreach (var b in blobs)
                    {
                        bool has = b.Digest is { } d && await output.Repository.BlobExistsAsync(d, ct).ConfigureAwait(false);
                        present.Add((b, has));
                        if (!has && b.Digest is { } digest)
                        {
                            if (!b.IsModelLayer && baseRepository is { } br && string.Equals(br.Host, host, StringComparison.OrdinalIgnoreCase) && br.Repository != output.Repository.Name)
                            {
                                mounts[digest] = br.Repository;
                            }
                            else if (first is not null && first != output.Repository.Name)
                            {
                                mounts[digest] = first;
                            }
                        }
                    }
                    break;
                case PlanOutputKind.Layout:
                    exists = File.Exists(Path.Combine(output.LocalPath!, "oci-layout"));
                    foreach (var b in blobs)
                    {
                        present.Add((b, exists && b.Digest is { } d && File.Exists(Path.Combine(output.LocalPath!, "blobs", d.Algorithm, d.Encoded))));
                    }
                    free = freeBytes(output.LocalPath!);
                    break;
                default:
                    // an archive is written anew, every blob in it (beside the old file until it is complete)
                    exists = File.Exists(output.LocalPath!);
                    present.AddRange(blobs.Select(b => (b, false)));
                    free = freeBytes(output.LocalPath!);
                    break;
            }
            var state = new PlannedOutputState(output, present, exists, free) { Mounts = mounts };
            if (free is { } f && state.BytesToSend + LocalSlackBytes > f)
            {
                problems.Add($"{output.Description}: needs {SizeParser.Format(state.BytesToSend)} ({state.BytesToSend} bytes) + {SizeParser.Format(LocalSlackBytes)} for index, manifests and temp files, "
                    + $"but its file system has {SizeParser.Format(f)} ({f} bytes) free");
            }
            states.Add(state);
        }
        if (maxLayers is { } budget && bases.Max(b => b.Layers.Count) + layers.Count > budget)
        {
            // Packer.Plan keeps to the budget; a plan made without it (or a base over it) is named here
            problems.Add($"the image would have {bases.Max(b => b.Layers.Count) + layers.Count} layers, over the layer budget of {budget}");
        }
        return new PackPlan(tree, source, bases, layers, known, baseBlobs, states, maxBlobSize, problems, notes, maxLayers);
    }

    /// <summary>Free bytes of the file system that holds <paramref name="path"/> or, when it does not exist yet, its nearest existing parent.</summary>
    public static long? FreeBytesAt(string path)
    {
        var dir = Path.GetFullPath(path);
        while (!Directory.Exists(dir))
        {
            var parent = Path.GetDirectoryName(dir);
            if (parent is null || parent == dir)
            {
                return null;
            }
            dir = parent;
        }
        try
        {
            return new DriveInfo(dir).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>The plan as text, for people (stdout of a dry run).</summary>
    public string Render()
    {
        var s = new StringBuilder();
        void Line(string text) => s.Append(text).Append('\n');
        string Size(long bytes) => $"{SizeParser.Format(bytes)} ({bytes.ToString(CultureInfo.InvariantCulture)} bytes)";

        Line("dry run: nothing was read from the model, written or uploaded");
        Line($"model: {Source}: {Tree.Entries.Count} files, {Size(Tree.TotalBytes)}");
        Line($"platforms: {string.Join(", ", Bases.Select(b => b.Platform.ToString()))} (base {Bases[0].Description}; {BaseBlobs.Count} base layers, {Size(BaseBlobs.Sum(b => b.Size))})");
        Line($"model layers: {Layers.Count} (the same blobs on every platform)");
        var groups = Layers.Where(l => Packer.IsGroupTitle(l.Title)).ToList();
        var grouping = groups.Count == 0
            ? "no file of at least the threshold shares a layer"
            : $"{groups.Count} layer(s) group {groups.Sum(g => g.Entries.Count(e => e.Kind is LayerEntryKind.File or LayerEntryKind.Symlink))} files of at least the threshold (the largest files stay alone)";
        Line(MaxLayers is { } budgetLine
            ? $"layer budget: {ImageLayers} of at most {budgetLine} layers ({Bases.Max(b => b.Layers.Count)} base + {Layers.Count} model); {grouping}"
            : $"layer budget: none; {ImageLayers} layers ({Bases.Max(b => b.Layers.Count)} base + {Layers.Count} model)");
        for (int i = 0; i < Layers.Count; i++)
        {
            var l = Layers[i];
            var files = l.Entries.Where(e => e.Kind is LayerEntryKind.File or LayerEntryKind.Symlink).ToList();
            var shape = files.Count == 1 ? "alone" : $"grouped, {files.Count} files";
            var digest = KnownDigests[i] is { } d ? $"{d} (layer record)" : "digest known once read";
            Line($"  {i + 1}. {l.Title} ({shape}): files {Size(l.ModelBytes)}, layer {Size(l.TarSize)}, {digest}");
            foreach (var f in files.Take(FilesListedPerLayer))
            {
                Line($"       {f.TarPath} {SizeParser.Format(f.Size)}");
            }
            if (files.Count > FilesListedPerLayer)
            {
                Line($"       … and {files.Count - FilesListedPerLayer} more");
            }
        }
        Line($"model bytes to read: {Size(ModelBytesToRead)}");
        Line("outputs:");
        foreach (var o in Outputs)
        {
            var what = o.Output.Kind switch
            {
                PlanOutputKind.Registry => "registry (HEAD)",
                PlanOutputKind.Layout => o.Exists ? "existing layout" : "new layout",
                _ => o.Exists ? "archive, replaced" : "new archive",
            };
            var verb = o.Output.Kind == PlanOutputKind.Registry ? "send" : "write";
            var mounted = o.BlobsMounted > 0 ? $"mount {o.BlobsMounted} (no bytes sent), " : "";
            Line($"  {o.Output.Description} ({what}): has {o.BlobsPresent} of {o.Blobs.Count} blobs; would {mounted}{verb} {o.Blobs.Count - o.BlobsPresent - o.BlobsMounted}, {Size(o.BytesToSend)}"
                + (o.FreeBytes is { } f ? $"; {SizeParser.Format(f)} free there" : ""));
            foreach (var (b, present) in o.Blobs)
            {
                var id = b.Digest?.ToString() ?? "(digest once read)";
                var action = present ? "has " : o.IsMounted(b) ? "mount" : verb + " ";
                var from = !present && o.IsMounted(b) ? $" (from {o.Mounts[b.Digest!.Value]})" : "";
                Line($"       {action} {(b.IsModelLayer ? "layer " + b.What : b.What)} {id} {SizeParser.Format(b.Size)}{from}");
            }
        }
        Line("limits:");
        var largest = BaseBlobs.Select(b => b.Size).Concat(Layers.Select(l => l.TarSize)).DefaultIfEmpty(0).Max();
        Line(MaxBlobSize is { } max
            ? $"  largest blob {Size(largest)}, maximum blob size {Size(max)}: {(largest <= max ? "ok" : "OVER")}"
            : $"  largest blob {Size(largest)}, no maximum blob size set");
        foreach (var o in Outputs.Where(o => o.FreeBytes is not null))
        {
            Line($"  {o.Output.Description}: needs {Size(o.BytesToSend)}, {Size(o.FreeBytes!.Value)} free: {(o.BytesToSend + LocalSlackBytes <= o.FreeBytes ? "ok" : "NOT ENOUGH")}");
        }
        foreach (var n in Notes)
        {
            Line($"  warning: {n}");
        }
        Line(Problems.Count == 0 ? "the real run would start" : $"the real run would stop: {Problems[0]}");
        return s.ToString();
    }
}
