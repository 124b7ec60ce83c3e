using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json;
using ModelCar.Oci.Layout;
using ModelCar.Oci.Tar;
using ModelCar.OciPack;
using ModelCar.Packing;
using ModelCar.Signing;
using ModelCar.TestSupport;

namespace ModelCar.OciPack.Tests;

/// <summary>
/// The OpenSSF model signature comes from the sha256 taken while the layers are written: a source that
/// refuses a second open of any file still gives a complete model.sig statement, whose digests are the files'.
/// </summary>
public sealed class ModelSignatureOneReadTests
{
    private sealed class OnceOnlySource(IReadOnlyDictionary<string, byte[]> files) : ILayerFileSource
    {
        public ConcurrentDictionary<string, int> Opens { get; } = new(StringComparer.Ordinal);

        public Stream Open(LayerEntry entry, long offset, CancellationToken ct)
        {
            if (Opens.AddOrUpdate(entry.SourcePath!, 1, (_, n) => n + 1) > 1)
            {
                throw new InvalidOperationException($"{entry.SourcePath} opened a second time");
            }
            var bytes = files[entry.SourcePath!];
            return new MemoryStream(bytes, (int)offset, bytes.Length - (int)offset, writable: false);
        }
    }

    [Fact]
    public async Task The_model_signature_is_built_from_the_one_read_and_names_each_files_sha256()
    {
        var content = new Dictionary<string, byte[]>
        {
            ["config.json"] = "{\"a\":1}"u8.ToArray(),
            ["weights/model-00001.safetensors"] = RandomNumberGenerator.GetBytes(300_000),
            ["weights.bin"] = RandomNumberGenerator.GetBytes(5000),
            [".gitattributes"] = "*.bin filter=lfs"u8.ToArray(),
        };
        var tree = ModelTree.FromFiles("hf://org/model@abc", content.Select(c => new ModelEntry(c.Key, ModelEntryKind.File, "src:" + c.Key, c.Value.Length, null)));
        var source = new OnceOnlySource(content.ToDictionary(c => "src:" + c.Key, c => c.Value));
        var settings = new PackSettings { ModelsPath = "/models", Uid = 1001, Gid = 0, User = "1001", LayerThreshold = 100_000, Created = DateTimeOffset.UnixEpoch };
        var plans = Packer.Plan(tree, settings);
        using var dir = new TempDir("model-sig");
        await using (var outputs = new ImageOutputs([new LayoutTarget(OciLayout.OpenOrCreate(dir.Combine("layout")), null)], null, Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance))
        {
            await outputs.WriteLayersAsync(plans, Packer.Attributes(settings), 2, _ => { }, CancellationToken.None, source);
            Assert.All(content.Keys, k => Assert.Equal(1, source.Opens["src:" + k]));

            // what oci-pack --model-signature does after the pack: no file is opened again
            var statement = ModelSignature.Statement("model", tree.EntryDigests(outputs.FileSha256).Select(d => new ModelFileDigest(d.Path, d.Sha256Hex)), allowSymlinks: false);
            Assert.All(content.Keys, k => Assert.Equal(1, source.Opens["src:" + k]));

            using var doc = JsonDocument.Parse(statement);
            var resources = doc.RootElement.GetProperty("predicate").GetProperty("resources").EnumerateArray()
                .Select(r => (Name: r.GetProperty("name").GetString()!, Digest: r.GetProperty("digest").GetString()!)).ToList();
            // model_signing's own default ignores .gitattributes: it is no resource; the rest is, each with sha256sum of the file, in path-component order
            Assert.Equal(["config.json", "weights/model-00001.safetensors", "weights.bin"], resources.Select(r => r.Name).ToArray());
            foreach (var (name, digest) in resources)
            {
                Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(content[name])), digest);
            }
            // the subject digest: sha256 over the resources' raw digests, in order (model_signing's root digest)
            var root = SHA256.HashData(resources.SelectMany(r => Convert.FromHexString(r.Digest)).ToArray());
            Assert.Equal(Convert.ToHexStringLower(root), doc.RootElement.GetProperty("subject")[0].GetProperty("digest").GetProperty("sha256").GetString());
        }
    }
}
