using ModelCar.Oci;
using ModelCar.Oci.Archive;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;
/// <summary>oci-archive output, streamed into the final file's reserved regions (see <see cref="OciArchiveWriter"/>); renamed into place on commit.</summary>
public sealed class ArchiveTarget(OciArchiveWriter writer, string path, string? tag) : IImageTarget
{
    private IReadOnlyList<OciArchiveWriter.BlobSlot> _slots = [];

    public string Description => $"oci-archive:{path}";

    // regions are reserved in plan order, so the archive's entry order does not depend on timing
    public void PrepareLayers(IReadOnlyList<TarLayer> layers) => _slots = layers.Select(l => writer.ReserveBlob(l.Size)).ToList();

    public IReadOnlyList<IBlobWriter> OpenBaseBlob(Descriptor blob) => writer.OpenBlobWriter(blob) is { } w ? [w] : [];

    public Task<IReadOnlyList<IBlobWriter>> OpenLayerAsync(int index, TarLayer layer, Digest? known, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<IBlobWriter>>([_slots[index].OpenWriter()]);

    public void AddSmallBlob(byte[] content, Descriptor descriptor) => writer.AddBlob(content, descriptor.MediaType);

    public Task CommitAsync(Descriptor manifest, CancellationToken ct)
    {
        var annotations = tag is null ? null : new Dictionary<string, string> { [Annotations.RefName] = tag };
        var index = new ImageIndex { Manifests = [manifest with { Annotations = annotations }] };
        writer.AddFile("index.json", OciJson.Serialize(index, OciJson.Index));
        writer.Commit();
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        writer.Dispose();
        return ValueTask.CompletedTask;
    }
}

