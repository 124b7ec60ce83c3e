using ModelCar.Oci;
using ModelCar.Oci.Layout;
using ModelCar.Oci.Tar;

namespace ModelCar.Packing;
/// <summary>
/// Layout output: layers stream into temp blobs renamed to their digest on commit (skipped when
/// the layout has the recorded digest already); index.json is updated last, atomically.
/// </summary>
public sealed class LayoutTarget(OciLayout layout, string? tag) : IImageTarget
{
    public string Description => layout.Description;

    public OciLayout Layout => layout;

    public IReadOnlyList<IBlobWriter> OpenBaseBlob(Descriptor blob) => layout.HasBlob(blob.Digest) ? [] : [layout.OpenBlobWriter(blob.Size, blob.MediaType)];

    public Task<IReadOnlyList<IBlobWriter>> OpenLayerAsync(int index, TarLayer layer, Digest? known, CancellationToken ct) =>
        Task.FromResult<IReadOnlyList<IBlobWriter>>(known is { } d && layout.HasBlob(d) ? [] : [layout.OpenBlobWriter(layer.Size, MediaTypes.Layer)]);

    public void AddSmallBlob(byte[] content, Descriptor descriptor) => layout.WriteBlob(content, descriptor.MediaType);

    public Task CommitAsync(Descriptor manifest, CancellationToken ct)
    {
        layout.AddToIndex(manifest, tag);
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync()
    {
        layout.Dispose();
        return ValueTask.CompletedTask;
    }
}

