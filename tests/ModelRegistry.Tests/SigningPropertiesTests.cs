using ModelCar.ModelRegistry;

namespace ModelCar.ModelRegistry.Tests;

/// <summary>The signing properties a registration records (issue 18 item 4) and how the verifier reads them back.</summary>
public sealed class SigningPropertiesTests
{
    private static readonly string A = "sha256:" + new string('a', 64);
    private static readonly string B = "sha256:" + new string('b', 64);

    private static Dictionary<string, MetadataValue> With(Provenance provenance, Dictionary<string, MetadataValue>? properties = null) =>
        RegistrationProperties.WithProvenance(properties ?? [], provenance);

    [Fact]
    public void Signing_digests_are_checked_and_recorded_as_strings()
    {
        var p = With(new Provenance { HfCommit = "c0ffee", ImageDigest = A, ModelFilesDigest = B, SignatureDigests = $" {A} ,{B},", AttestationDigests = A });
        Assert.Equal(B, p[ModelCarProperties.ModelFilesDigest].StringValue);
        Assert.Equal($"{A},{B}", p[ModelCarProperties.SignatureDigests].StringValue); // spaces and empty items dropped
        Assert.Equal(A, p[ModelCarProperties.AttestationDigests].StringValue);
        // "" from an unsigned Tekton run records nothing
        Assert.Empty(With(new Provenance { ModelFilesDigest = "", SignatureDigests = "", AttestationDigests = " " }));
        var list = Assert.Throws<RegistrationInputException>(() => With(new Provenance { SignatureDigests = $"{A},sha256:xyz" }));
        Assert.Equal(RegistrationField.SignatureDigests, list.Field);
        Assert.Equal("signature digests: 'sha256:xyz' is not sha256:<64 hex digits> (give a comma-separated list)", list.Message);
        var files = Assert.Throws<RegistrationInputException>(() => With(new Provenance { ModelFilesDigest = "abc" }));
        Assert.Equal(RegistrationField.ModelFilesDigest, files.Field);
        Assert.Equal("model files digest 'abc' is not sha256:<64 hex digits>", files.Message);
        // a key given both as a custom property and typed
        var both = Assert.Throws<RegistrationInputException>(() => With(new Provenance { ModelFilesDigest = B }, new() { [ModelCarProperties.ModelFilesDigest] = MetadataValue.Of(A) }));
        Assert.Equal("model files digest and property 'model-files-digest' both set 'model-files-digest': give it once", both.Message);
        Assert.True(both.IsInvalidInput);
    }

    [Fact]
    public void The_verifier_reads_the_typed_key_or_the_pipelines_underscore_key_and_refuses_a_contradiction()
    {
        static ModelArtifact With(params (string Key, string Value)[] props) => new() { Id = "3", CustomProperties = props.ToDictionary(p => p.Key, p => MetadataValue.Of(p.Value)) };
        Assert.Equal("c0ffee", ModelCarProperties.Get(With(("hf_commit", "c0ffee")), ModelCarProperties.HfCommit));
        Assert.Equal("c0ffee", ModelCarProperties.Get(With(("hf-commit", "c0ffee"), ("hf_commit", "c0ffee")), ModelCarProperties.HfCommit));
        Assert.Null(ModelCarProperties.Get(With(("hf-commit", " ")), ModelCarProperties.HfCommit));
        Assert.Contains("contradicts itself", Assert.Throws<ModelRegistryException>(() => ModelCarProperties.Get(With(("image-digest", A), ("image_digest", B)), ModelCarProperties.ImageDigest)).Message);
        Assert.Equal(A, ModelCarProperties.UriDigest($"oci://quay.io/org/m@{A}"));
        Assert.Null(ModelCarProperties.UriDigest("oci://quay.io/org/m:tag"));
    }
}
