using Microsoft.Extensions.Logging.Abstractions;
using ModelCar.Common.Http;
using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Registry.Auth;
using ModelCar.TestSupport;

namespace ModelCar.Registry.Tests;

/// <summary>The pull side (used by oci-pack for base images) against the real registry; skopeo puts the image there.</summary>
public sealed class RegistryImageSourceTests(SharedRegistryFixture fixture) : IClassFixture<SharedRegistryFixture>
{
    [Fact]
    public async Task Resolves_a_tag_and_reads_verified_blobs()
    {
        using var tmp = new TempDir();
        var image = TestImages.WriteLayout(tmp.Combine("layout"), "v1", TestImages.RandomLayers(11, 5000, 80_000));
        var copy = await PeerTools.RunAsync("skopeo", ["copy", "--dest-tls-verify=false", "--preserve-digests", $"oci:{image.LayoutPath}:v1", $"docker://{fixture.Registry.HostPort}/pull/src:v1"]);
        Assert.True(copy.ExitCode == 0, copy.ToString());

        var settings = new HttpSettings { TlsVerify = false, MaxRetries = 1, RetryBaseDelay = TimeSpan.FromMilliseconds(10) };
        using var source = RegistryImageSource.Create(RegistryReference.Parse($"{fixture.Registry.HostPort}/pull/src:v1"), settings, new AnonymousCredentialProvider(), NullLogger.Instance);
        var root = await source.ResolveRootAsync(null, CancellationToken.None);
        Assert.Equal(image.ManifestDigest, root.Digest.ToString());
        Assert.Equal(MediaTypes.ImageManifest, root.MediaType);
        var manifestBytes = source.ReadSmallBlob(root);
        var manifest = OciJson.Deserialize(manifestBytes, OciJson.Manifest, "m");
        foreach (var (layer, expected) in manifest.Layers.Zip(image.Layers))
        {
            using var s = source.OpenVerified(layer);
            var ms = new MemoryStream();
            await s.CopyToAsync(ms);
            Assert.Equal(expected.Content, ms.ToArray());
        }
        var missing = await Assert.ThrowsAsync<HttpFailureException>(() => source.ResolveRootAsync("nope", CancellationToken.None));
        Assert.Contains("404", missing.Message);
        Assert.Contains("MANIFEST_UNKNOWN", missing.Message);
    }
}
