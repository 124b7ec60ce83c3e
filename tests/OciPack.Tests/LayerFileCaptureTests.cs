using ModelCar.Oci.Tar;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// The ModelPack config's config.json is kept from the layer's own bytes as they stream (issue 20: no second read):
/// whatever the buffer boundaries, the kept bytes are the file's, only the named files are kept, and a file over the bound is not.
/// </summary>
public sealed class LayerFileCaptureTests : IDisposable
{
    private static readonly LayerEntryAttributes Attrs = new() { Uid = 0, Gid = 0, ModificationTime = DateTimeOffset.UnixEpoch };
    private readonly TempDir _dir = new("layer-capture");

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(1)]
    [InlineData(511)]
    [InlineData(4096)]
    [InlineData(1 << 20)]
    public void Keeps_exactly_the_named_small_files_whatever_the_buffer_size(int chunk)
    {
        var config = TempDir.RandomBytes(1234, 1);
        var tokenizer = TempDir.RandomBytes(5000, 2);
        var big = TempDir.RandomBytes(20_000, 3);
        LayerEntry File(string name, byte[] content) => new("models/" + name, LayerEntryKind.File, _dir.WriteFile(name, content), content.Length);
        var layer = new TarLayer([new LayerEntry("models", LayerEntryKind.Directory), File("big.bin", big), File("config.json", config), File("empty.json", []), File("tokenizer.json", tokenizer)], Attrs);
        var capture = new LayerFileCapture(layer, new HashSet<string> { "models/config.json", "models/big.bin", "models/empty.json" }, maxBytes: 10_000);
        Assert.True(capture.IsNeeded);
        using (var stream = layer.OpenAt(0, _ => { }, CancellationToken.None))
        {
            var buffer = new byte[chunk];
            for (int n; (n = stream.Read(buffer, 0, buffer.Length)) > 0;)
            {
                capture.Append(buffer.AsSpan(0, n));
            }
        }
        Assert.Equal(["models/config.json", "models/empty.json"], capture.Result.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(config, capture.Result["models/config.json"]);
        Assert.Empty(capture.Result["models/empty.json"]);
        // a layer without a named file needs no feeding
        Assert.False(new LayerFileCapture(layer, new HashSet<string> { "models/other.json" }, 10_000).IsNeeded);
    }
}
