namespace ModelCar.Oci.Tests;

public class DigestAndReferenceTests
{
    private const string Hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    [Theory]
    [InlineData("docker://u:PASS-77@reg.example/org/m:v1", "'docker://***@reg.example/org/m:v1'")]
    [InlineData("docker://u:p@ss:PASS-77@reg.example:5000/m", "'docker://***@reg.example:5000/m'")]
    [InlineData("docker://tok:PASS-77@reg.example", "'docker://***@reg.example'")]
    public void A_docker_reference_with_user_info_is_refused_without_echoing_it(string text, string shown)
    {
        var e = Assert.Throws<FormatException>(() => ImageLocation.Parse(text));
        Assert.DoesNotContain("PASS-77", e.Message);
        Assert.StartsWith(shown, e.Message);
        // digest references keep working
        var pinned = (RegistryLocation)ImageLocation.Parse("docker://busybox@sha256:" + Hex);
        Assert.Equal("sha256:" + Hex, pinned.Reference.Digest.ToString());
        Assert.Equal("org/m", ((RegistryLocation)ImageLocation.Parse("docker://reg.example/org/m@sha256:" + Hex)).Reference.Repository);
    }

    [Fact]
    public void Digest_parses_and_prints()
    {
        var d = Digest.Parse("sha256:" + Hex);
        Assert.Equal("sha256", d.Algorithm);
        Assert.Equal("sha256:" + Hex, d.ToString());
        Assert.Equal(d, Digest.Sha256([]));
        Assert.True(d.Matches(Digest.Sha256([])));
    }

    [Theory]
    [InlineData("sha256:ABC")]
    [InlineData("sha256:" + "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")]
    [InlineData("md5:d41d8cd98f00b204e9800998ecf8427e")]
    [InlineData("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")]
    public void Bad_digests_are_rejected(string text) => Assert.False(Digest.TryParse(text, out _));

    [Theory]
    [InlineData("docker://quay.io/org/model:v1", "quay.io", "org/model", "v1")]
    [InlineData("docker://127.0.0.1:5000/models/mistral", "127.0.0.1:5000", "models/mistral", null)]
    [InlineData("docker://localhost/x:latest", "localhost", "x", "latest")]
    [InlineData("docker://busybox", "docker.io", "library/busybox", null)]
    [InlineData("docker://image-registry.openshift-image-registry.svc:5000/ns/repo:tag", "image-registry.openshift-image-registry.svc:5000", "ns/repo", "tag")]
    public void Registry_references_parse(string text, string registry, string repo, string? tag)
    {
        var loc = Assert.IsType<RegistryLocation>(ImageLocation.Parse(text));
        Assert.Equal(registry, loc.Reference.Registry);
        Assert.Equal(repo, loc.Reference.Repository);
        Assert.Equal(tag, loc.Reference.Tag);
    }

    [Fact]
    public void Digest_reference_parses()
    {
        var loc = (RegistryLocation)ImageLocation.Parse($"docker://r.example/a/b@sha256:{Hex}");
        Assert.Equal($"sha256:{Hex}", loc.Reference.ManifestReference);
    }

    [Theory]
    [InlineData("oci:/tmp/layout", "/tmp/layout", null)]
    [InlineData("oci:/tmp/layout:v1.0", "/tmp/layout", "v1.0")]
    [InlineData("oci:rel/dir:quantized-w4a16-2501", "rel/dir", "quantized-w4a16-2501")]
    public void Layout_references_split_at_first_colon(string text, string path, string? reference)
    {
        var loc = Assert.IsType<OciLayoutLocation>(ImageLocation.Parse(text));
        Assert.Equal(path, loc.Path);
        Assert.Equal(reference, loc.Reference);
    }

    [Fact]
    public void Archive_reference_parses()
    {
        var loc = Assert.IsType<OciArchiveLocation>(ImageLocation.Parse("oci-archive:/pvc/image.tar:latest"));
        Assert.Equal("/pvc/image.tar", loc.Path);
        Assert.Equal("latest", loc.Reference);
    }

    [Theory]
    [InlineData("quay.io/org/model:v1")]
    [InlineData("docker://Quay.io/Org/Model")]
    [InlineData("docker://r.example/repo:bad tag")]
    [InlineData("oci:")]
    [InlineData("dir:/x")]
    public void Malformed_references_are_rejected(string text) => Assert.Throws<FormatException>(() => ImageLocation.Parse(text));
}
