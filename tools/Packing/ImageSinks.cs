using ModelCar.Oci;
using ModelCar.Oci.Archive;
using ModelCar.Oci.Layout;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;

/// <summary>A model layer to write: its tar entries and its exact size (known before any data is read).</summary>
public sealed record LayerPlan(string Title, IReadOnlyList<LayerEntry> Entries, long ModelBytes, long TarSize);

/// <summary>Where the image goes: a layout directory or an oci-archive file.</summary>
public interface IImageSink : IDisposable
{
    string Description { get; }

    Task CopyBaseBlobAsync(IImageSource source, Descriptor blob, Action<long> progress, CancellationToken ct);

    /// <summary>Writes the layers (in parallel, up to <paramref name="jobs"/>); descriptors in plan order.</summary>
    Task<Descriptor[]> WriteLayersAsync(IReadOnlyList<LayerPlan> plans, LayerEntryAttributes attributes, int jobs, Action<long> progress, CancellationToken ct);

    Descriptor WriteSmallBlob(byte[] content, string mediaType);

    /// <summary>Makes the image visible: index.json (layout) or the renamed archive. Last step.</summary>
    void Commit(Descriptor manifest, string? tag);
}

internal static class LayerJobs
{
    public static async Task<Descriptor[]> RunAsync(IReadOnlyList<LayerPlan> plans, int jobs, Func<int, Descriptor> write, CancellationToken ct)
    {
        var results = new Descriptor[plans.Count];
        // biggest first: the long layers start early, small ones fill the gaps
        var order = Enumerable.Range(0, plans.Count).OrderByDescending(i => plans[i].TarSize).ToList();
        await Parallel.ForEachAsync(order, new ParallelOptions { MaxDegreeOfParallelism = jobs, CancellationToken = ct },
            (i, _) =>
            {
                results[i] = write(i) with { Annotations = new Dictionary<string, string> { [Annotations.Title] = plans[i].Title } };
                return ValueTask.CompletedTask;
            }).ConfigureAwait(false);
        return results;
    }
}

/// <summary>
/// Layout output: each layer is streamed into a temp blob while hashed, then renamed to its
/// digest (dropped if already there); index.json is updated last, atomically.
/// </summary>
public sealed class LayoutSink(OciLayout layout) : IImageSink
{
    public string Description => layout.Description;

    public async Task CopyBaseBlobAsync(IImageSource source, Descriptor blob, Action<long> progress, CancellationToken ct)
    {
        if (layout.HasBlob(blob.Digest))
        {
            return;
        }
        await using var stream = source.OpenVerified(blob);
        await layout.WriteBlobAsync(stream, blob.MediaType, ct, n => progress(n)).ConfigureAwait(false);
    }

    public Task<Descriptor[]> WriteLayersAsync(IReadOnlyList<LayerPlan> plans, LayerEntryAttributes attributes, int jobs, Action<long> progress, CancellationToken ct) =>
        LayerJobs.RunAsync(plans, jobs, i =>
        {
            var d = layout.WriteBlob(s => LayerWriter.Write(plans[i].Entries, s, attributes, progress, ct), MediaTypes.Layer);
            return d.Size == plans[i].TarSize ? d : throw new InvalidOperationException($"layer {plans[i].Title}: {d.Size} bytes written, {plans[i].TarSize} predicted");
        }, ct);

    public Descriptor WriteSmallBlob(byte[] content, string mediaType) => layout.WriteBlob(content, mediaType);

    public void Commit(Descriptor manifest, string? tag) => layout.AddToIndex(manifest, tag);

    public void Dispose() => layout.Dispose();
}

/// <summary>oci-archive output, streamed into the final file (see <see cref="OciArchiveWriter"/>).</summary>
public sealed class ArchiveSink(OciArchiveWriter writer, string path) : IImageSink
{
    public string Description => $"oci-archive:{path}";

    public Task CopyBaseBlobAsync(IImageSource source, Descriptor blob, Action<long> progress, CancellationToken ct) =>
        writer.CopyBlobAsync(blob, () => source.OpenVerified(blob), progress, ct);

    public Task<Descriptor[]> WriteLayersAsync(IReadOnlyList<LayerPlan> plans, LayerEntryAttributes attributes, int jobs, Action<long> progress, CancellationToken ct)
    {
        // regions are reserved in plan order, so the archive's entry order does not depend on timing
        var slots = plans.Select(p => writer.ReserveBlob(p.TarSize)).ToList();
        return LayerJobs.RunAsync(plans, jobs, i =>
        {
            var region = slots[i].Open();
            Digest digest;
            long written;
            using (var buffered = new BufferedStream(region, 1 << 20))
            using (var hashing = new HashingWriteStream(buffered, leaveOpen: true))
            {
                LayerWriter.Write(plans[i].Entries, hashing, attributes, progress, ct);
                buffered.Flush();
                digest = hashing.GetDigest();
                written = hashing.BytesWritten;
            }
            slots[i].Complete(digest, written);
            return new Descriptor { MediaType = MediaTypes.Layer, Digest = digest, Size = written };
        }, ct);
    }

    public Descriptor WriteSmallBlob(byte[] content, string mediaType) => writer.AddBlob(content, mediaType);

    public void Commit(Descriptor manifest, string? tag)
    {
        var annotations = tag is null ? null : new Dictionary<string, string> { [Annotations.RefName] = tag };
        var index = new ImageIndex { Manifests = [manifest with { Annotations = annotations }] };
        writer.AddFile("index.json", OciJson.Serialize(index, OciJson.Index));
        writer.Commit();
    }

    public void Dispose() => writer.Dispose();
}
