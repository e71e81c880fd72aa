//! The smallest use of an engine (open, one durable insert, one read), to
//! measure the binary size an engine adds: build with no feature for the
//! baseline, then with `--features redb` or `--features fjall`.

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/storebench-minimal".into());
    std::fs::create_dir_all(&dir).unwrap();
    #[cfg(feature = "redb")]
    {
        use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
        const T: TableDefinition<u64, &[u8]> = TableDefinition::new("t");
        let db = Database::create(format!("{dir}/m.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(T)
            .unwrap()
            .insert(1, &[7u8; 200][..])
            .unwrap();
        txn.commit().unwrap();
        let r = db.begin_read().unwrap();
        println!(
            "{}",
            r.open_table(T)
                .unwrap()
                .get(1)
                .unwrap()
                .unwrap()
                .value()
                .len()
        );
    }
    #[cfg(feature = "fjall")]
    {
        use fjall::{Database, KeyspaceCreateOptions, PersistMode};
        let db = Database::builder(format!("{dir}/m.fjall")).open().unwrap();
        let ks = db.keyspace("t", KeyspaceCreateOptions::default).unwrap();
        ks.insert(1u64.to_be_bytes(), [7u8; 200]).unwrap();
        db.persist(PersistMode::SyncData).unwrap();
        println!("{}", ks.get(1u64.to_be_bytes()).unwrap().unwrap().len());
    }
    #[cfg(not(any(feature = "redb", feature = "fjall")))]
    {
        use std::io::Write;
        let mut f = std::fs::File::create(format!("{dir}/m.log")).unwrap();
        f.write_all(&[7u8; 200]).unwrap();
        f.sync_data().unwrap();
        println!("{}", std::fs::read(format!("{dir}/m.log")).unwrap().len());
    }
}
