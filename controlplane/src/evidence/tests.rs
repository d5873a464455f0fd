use super::*;
use crate::store::EventOutcome;

fn event(seq: u64, resource: &str, operation: &str) -> IdentityEvent {
    IdentityEvent {
        seq,
        revision: seq,
        at_ms: 1_000 * seq,
        source: "okta".into(),
        operation: operation.into(),
        resource_type: "User".into(),
        resource_id: resource.into(),
        before: Some(json!({"active": true, "note": "a, \"quoted\"\nline"})),
        after: Some(json!({"active": false})),
        outcome: EventOutcome::Applied,
        status: None,
        detail: seq
            .is_multiple_of(2)
            .then(|| "detail, with comma\nand a line break".to_owned()),
        request: None,
        request_sha256: Some(format!("{seq:064x}")),
        high_priority: false,
    }
}

fn events() -> Vec<IdentityEvent> {
    (1..=6)
        .map(|i| event(i, if i.is_multiple_of(2) { "sam" } else { "ana" }, "patch"))
        .collect()
}

fn signer() -> FrameSigner {
    FrameSigner::from_seed(&[5; 32])
}

fn trusted() -> TrustedKeys {
    TrustedKeys::from_base64([signer().public_key_base64().as_str()]).expect("key")
}

fn export(encoding: Encoding) -> (Vec<u8>, Manifest) {
    build(
        &events(),
        Filter::default(),
        encoding,
        "e1".into(),
        42,
        &signer(),
    )
}

/// The file's lines, the CSV header kept apart.
fn lines(file: &[u8], encoding: Encoding) -> (Option<String>, Vec<String>) {
    let mut all: Vec<String> = String::from_utf8_lossy(file)
        .lines()
        .map(str::to_owned)
        .collect();
    let header = (encoding == Encoding::Csv).then(|| all.remove(0));
    (header, all)
}

fn join(header: &Option<String>, records: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for l in header.iter().chain(records) {
        out.push_str(l);
        out.push('\n');
    }
    out.into_bytes()
}

#[test]
fn an_untouched_export_verifies_and_a_filter_narrows_it() {
    for encoding in [Encoding::Jsonl, Encoding::Csv] {
        let (file, manifest) = export(encoding);
        assert_eq!(verify(&file, &manifest, &trusted()), Ok(6), "{encoding:?}");
        assert_eq!(manifest.records, 6);

        let only_sam = Filter {
            resource_id: Some("sam".into()),
            from_ms: Some(3_000),
            ..Default::default()
        };
        let (file, manifest) = build(&events(), only_sam, encoding, "e2".into(), 1, &signer());
        assert_eq!(verify(&file, &manifest, &trusted()), Ok(2), "{encoding:?}");
    }
}

#[test]
fn tampering_names_the_first_bad_record() {
    for encoding in [Encoding::Jsonl, Encoding::Csv] {
        let (file, manifest) = export(encoding);
        let (header, records) = lines(&file, encoding);
        let check = |records: &[String]| verify(&join(&header, records), &manifest, &trusted());
        let record_error = |r: Result<u64, VerifyError>| match r {
            Err(VerifyError::Record(n, why)) => (n, why),
            other => panic!("{encoding:?}: expected a record error, got {other:?}"),
        };

        // Altered: a field of record 3.
        let mut altered = records.clone();
        altered[2] = altered[2]
            .replacen("sam", "eve", 1)
            .replacen("ana", "eve", 1);
        let (n, why) = record_error(check(&altered));
        assert_eq!(n, 3, "{encoding:?}");
        assert!(why.contains("altered"), "{why}");

        // Removed: record 3.
        let mut removed = records.clone();
        removed.remove(2);
        assert_eq!(record_error(check(&removed)).0, 3, "{encoding:?}");

        // Inserted: a copy of record 2 after it.
        let mut inserted = records.clone();
        inserted.insert(2, records[1].clone());
        assert_eq!(record_error(check(&inserted)).0, 3, "{encoding:?}");

        // Reordered: records 4 and 5 swapped.
        let mut swapped = records.clone();
        swapped.swap(3, 4);
        assert_eq!(record_error(check(&swapped)).0, 4, "{encoding:?}");

        // The last record cut off; one added at the end.
        assert_eq!(
            check(&records[..5]),
            Err(VerifyError::Missing {
                found: 5,
                expected: 6
            })
        );
        let mut longer = records.clone();
        longer.push(records[5].clone());
        assert_eq!(check(&longer), Err(VerifyError::Extra(6)));
    }
}

#[test]
fn a_rewritten_chain_or_manifest_fails_the_signature_or_the_head() {
    let (file, manifest) = export(Encoding::Jsonl);

    // Someone rebuilds the file from edited events, chain and all, keeping the genuine
    // manifest: every record checks, the signed head does not.
    let mut edited = events();
    edited[2].resource_id = "eve".into();
    let forger = FrameSigner::from_seed(&[6; 32]);
    let (forged, _) = build(
        &edited,
        Filter::default(),
        Encoding::Jsonl,
        "e1".into(),
        42,
        &forger,
    );
    assert_eq!(
        verify(&forged, &manifest, &trusted()),
        Err(VerifyError::Head)
    );

    // ... and signs a manifest of their own: not with the control plane's key.
    let (_, forged_manifest) = build(
        &edited,
        Filter::default(),
        Encoding::Jsonl,
        "e1".into(),
        42,
        &forger,
    );
    assert!(matches!(
        verify(&forged, &forged_manifest, &trusted()),
        Err(VerifyError::Signature(_))
    ));

    // A manifest edited after signing (say, fewer records claimed).
    let mut fewer = manifest.clone();
    fewer.records = 5;
    assert!(matches!(
        verify(&file, &fewer, &trusted()),
        Err(VerifyError::Signature(_))
    ));

    // Whitespace changed in a record: the content checks, the signed file hash does not.
    let text = String::from_utf8_lossy(&file).replacen('{', "{ ", 1);
    assert_eq!(
        verify(text.as_bytes(), &manifest, &trusted()),
        Err(VerifyError::FileHash)
    );
}

/// Six decision records of two principals, stored as a node would ship them.
async fn decision_store(dir: &std::path::Path) -> DecisionStore {
    let store = DecisionStore::open(&dir.join("decisions.db")).expect("open");
    let mut jsonl = Vec::new();
    for seq in 0..6u64 {
        let user = if seq % 2 == 0 { "ana" } else { "sam" };
        let record = portcullis_shared::audit::DecisionRecord {
            seq,
            at_ms: 1_000 * (seq + 1),
            node: "edge-1".into(),
            request_id: format!("r{seq}"),
            principal: Some(portcullis_shared::audit::PrincipalRef {
                id: format!("id-{user}"),
                user_name: format!("{user}@example.com"),
                source: "okta".into(),
            }),
            action: "chat".into(),
            resource: "Model::\"gpt-4o\"".into(),
            decision: if seq % 3 == 0 { "deny" } else { "allow" }.into(),
            reason: "permitted".into(),
            policies: vec!["p1".into()],
            snapshot_version: 7,
            identity_revision: 3,
            policy_version: "1:abc".into(),
            decision_us: 2,
            request: None,
        };
        jsonl.extend(serde_json::to_vec(&record).expect("json"));
        jsonl.push(b'\n');
    }
    store
        .insert_batch("edge-1".into(), "e0".into(), (0, 5), jsonl.into())
        .await
        .expect("insert");
    store
}

#[tokio::test]
async fn decision_exports_chain_sign_and_catch_tampering() {
    let dir = tempfile::tempdir().expect("tempdir");
    let decisions = decision_store(dir.path()).await;
    for encoding in [Encoding::Jsonl, Encoding::Csv] {
        let (file, manifest) = export_decisions(&decisions, Filter::default(), encoding, &signer())
            .await
            .expect("export");
        assert_eq!(manifest.stream, EvidenceStream::Decisions);
        assert_eq!(verify(&file, &manifest, &trusted()), Ok(6), "{encoding:?}");

        // One principal's denials.
        let sam = Filter {
            principal: Some("sam@example.com".into()),
            kind: Some("deny".into()),
            ..Default::default()
        };
        let (narrow, m) = export_decisions(&decisions, sam, encoding, &signer())
            .await
            .expect("export");
        assert_eq!(verify(&narrow, &m, &trusted()), Ok(1), "record 3 only");
        assert!(String::from_utf8_lossy(&narrow).contains("r3"));

        // A decision flipped, records swapped, and the manifest relabelled as identity events.
        let (header, records) = lines(&file, encoding);
        let check =
            |records: &[String], m: &Manifest| verify(&join(&header, records), m, &trusted());
        let mut flipped = records.clone();
        flipped[1] = flipped[1].replacen("allow", "deny", 1);
        assert!(
            matches!(check(&flipped, &manifest), Err(VerifyError::Record(2, ref why)) if why.contains("altered")),
            "{encoding:?}"
        );
        let mut swapped = records.clone();
        swapped.swap(2, 3);
        assert!(matches!(
            check(&swapped, &manifest),
            Err(VerifyError::Record(3, _))
        ));
        let mut relabelled = manifest.clone();
        relabelled.stream = EvidenceStream::Identity;
        assert!(matches!(
            check(&records, &relabelled),
            Err(VerifyError::Signature(_))
        ));
    }
}

#[test]
fn identity_manifests_keep_their_earlier_form() {
    let (_, manifest) = export(Encoding::Jsonl);
    let json = serde_json::to_value(&manifest).expect("json");
    assert!(json.get("stream").is_none(), "{json}");
    assert!(json["filter"].get("principal").is_none(), "{json}");
}
