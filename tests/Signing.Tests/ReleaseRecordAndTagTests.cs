using ModelCar.Oci;
using ModelCar.Registry;
using ModelCar.Signing.Verification;

namespace ModelCar.Signing.Tests;

/// <summary>The release record as text (what the Model Registry holds) and the cosign tag names, each written once.</summary>
public sealed class ReleaseRecordAndTagTests
{
    private static readonly Digest A = Digest.Sha256("a"u8), B = Digest.Sha256("b"u8), F = Digest.Sha256("files"u8);

    private static ReleaseRecordText Record(string uri, string? uriDigest, string? imageDigest, string? files = null) =>
        new("the record", uri, uriDigest, "image-digest", imageDigest, "c0ffee", "model-files-digest", files);

    [Fact]
    public void A_record_gives_the_digest_of_its_uri_or_its_property_and_refuses_a_contradiction_or_a_malformed_digest()
    {
        var fromUri = Record($"oci://q/m@{A}", A.ToString(), null, F.ToString()).Parse();
        Assert.Equal(A, fromUri.ImageDigest);
        Assert.Equal(F, fromUri.ModelFilesDigest);
        Assert.Equal("c0ffee", fromUri.Commit);
        Assert.Equal(B, Record("oci://q/m:tag", null, B.ToString()).Parse().ImageDigest);
        Assert.Equal(A, Record($"oci://q/m@{A}", A.ToString(), A.ToString()).Parse().ImageDigest);

        var both = Assert.Throws<SigningException>(() => Record($"oci://q/m@{A}", A.ToString(), B.ToString()).Parse());
        Assert.Equal(SigningFailure.ReleaseRecord, both.Failure);
        Assert.Equal($"digest mismatch: the record records uri oci://q/m@{A} but image-digest {B}: the record contradicts itself", both.Message);
        Assert.False(both.IsInvalidInput); // exit 1: the record is wrong, not the command line
        var bad = Assert.Throws<SigningException>(() => Record("oci://q/m:tag", null, null, "sha256:xyz").Parse());
        Assert.Equal("the record: model-files-digest is not a digest ('sha256:xyz')", bad.Message);
        var badUri = Assert.Throws<SigningException>(() => Record("oci://q/m@nope", "nope", null).Parse());
        Assert.Equal("the record: uri 'oci://q/m@nope' is not a digest ('nope')", badUri.Message);
    }

    [Fact]
    public void Cosign_tags_are_the_referrers_fallback_tag_plus_sig_or_att()
    {
        Assert.Equal($"sha256-{A.Encoded}.sig", CosignAttachments.SignatureTag(A));
        Assert.Equal($"sha256-{A.Encoded}.att", CosignAttachments.AttestationTag(A));
        Assert.Equal(Referrers.FallbackTag(A) + ".sig", CosignAttachments.SignatureTag(A));
    }
}
