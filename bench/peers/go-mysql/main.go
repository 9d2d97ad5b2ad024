// gomysql is the Go peer of the capture benchmark: go-mysql's BinlogSyncer reads a fixed binlog
// range, and every row of the wanted table becomes a JSON object (column name -> value) through
// encoding/json, as a Go team would write it. It measures what sluice-capture tail does (read,
// decode, JSON-encode every row) with the most used Go binlog library, and prints
// "<rows> <seconds>" as bench/capture_pyrepl.py does, so the bench scripts read both alike.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-mysql-org/go-mysql/replication"
)

// binaryCollation is the collation id of the `binary` charset (BINARY, VARBINARY, BLOB). Their
// bytes are not text, and sluice-capture writes them as base64, which is what encoding/json does
// with a []byte.
const binaryCollation = 63

type options struct {
	host, user, password, flavor string
	port                         uint
	serverID                     uint
	file                         string
	pos                          uint
	untilFile                    string
	untilPos                     uint
	rows                         int64
	db, table                    string
	out                          string
	timeout                      time.Duration
}

func main() {
	var o options
	flag.StringVar(&o.host, "host", "127.0.0.1", "server host")
	flag.UintVar(&o.port, "port", 3307, "server port")
	flag.StringVar(&o.user, "user", "sluice", "replication user")
	flag.StringVar(&o.password, "password", "sluice", "password")
	flag.StringVar(&o.flavor, "flavor", mysql.MariaDBFlavor, "mariadb or mysql")
	// 7077 is the Python baseline's and 7078 the capture's: a replica id the server sees twice
	// gets its older connection killed.
	flag.UintVar(&o.serverID, "server-id", 7079, "replica server id, distinct from any other reader")
	flag.StringVar(&o.file, "file", "", "binlog file to start in (required)")
	flag.UintVar(&o.pos, "pos", 4, "position in -file to start at")
	flag.StringVar(&o.untilFile, "until-file", "", "stop at the event ending at or past -until-pos in this file")
	flag.UintVar(&o.untilPos, "until-pos", 0, "end position in -until-file (SHOW MASTER STATUS after the writes)")
	flag.Int64Var(&o.rows, "rows", 0, "stop after this many rows (0: no limit)")
	flag.StringVar(&o.db, "db", "", "only rows of this database (empty: all)")
	flag.StringVar(&o.table, "table", "", "only rows of this table (empty: all)")
	flag.StringVar(&o.out, "out", "", "write the JSON rows here, one a line: a path, - for stdout, empty to discard")
	// A blocking binlog dump waits for more events for ever; a wrong end position must not hang
	// a benchmark run.
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.Parse()
	if o.file == "" || (o.untilFile == "" && o.rows <= 0) {
		fmt.Fprintln(os.Stderr, "gomysql: need -file and -pos, and -until-file/-until-pos or -rows")
		flag.Usage()
		os.Exit(2)
	}
	rows, secs, err := run(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "gomysql: %v (after %d rows)\n", err, rows)
		os.Exit(1)
	}
	fmt.Println(rows, pythonSeconds(secs))
}

// columnPlan is what a table map says once for all rows of its rows events: the JSON keys, and
// how each column's Go value has to change to be encoded as sluice-capture encodes it.
type columnPlan struct {
	names []string
	kinds []columnKind
}

type columnKind uint8

const (
	asIs columnKind = iota
	// TEXT (and MariaDB's JSON, a LONGTEXT) arrives as []byte, which encoding/json would base64.
	text
	// VARBINARY and BINARY arrive as a Go string, which encoding/json would mangle into U+FFFD.
	binary
)

func planFor(tm *replication.TableMapEvent) *columnPlan {
	p := &columnPlan{names: tm.ColumnNameString(), kinds: make([]columnKind, tm.ColumnCount)}
	if len(p.names) != int(tm.ColumnCount) {
		// Without binlog_row_metadata=FULL the server sends no names; positional keys keep the
		// run going (and the JSON about as large) rather than querying the schema, which the
		// benchmark does not need.
		p.names = make([]string, tm.ColumnCount)
		for i := range p.names {
			p.names[i] = "@" + strconv.Itoa(i+1)
		}
	}
	collations := tm.CollationMap()
	for i := range p.kinds {
		if !tm.IsCharacterColumn(i) {
			continue
		}
		if c, known := collations[i]; known && c == binaryCollation {
			p.kinds[i] = binary
		} else {
			p.kinds[i] = text
		}
	}
	return p
}

func (p *columnPlan) object(row []any) map[string]any {
	obj := make(map[string]any, len(row))
	for i, v := range row {
		switch p.kinds[i] {
		case text:
			if b, ok := v.([]byte); ok {
				v = string(b)
			}
		case binary:
			if s, ok := v.(string); ok {
				v = []byte(s)
			}
		}
		obj[p.names[i]] = v
	}
	return obj
}

func run(o options) (rows int64, secs float64, err error) {
	if o.serverID == 0 || o.serverID > math.MaxUint32 || o.port > math.MaxUint16 || o.pos > math.MaxUint32 || o.untilPos > math.MaxUint32 {
		return 0, 0, errors.New("-server-id, -port or a position is out of range")
	}
	var sink io.Writer = io.Discard
	switch o.out {
	case "":
	case "-":
		sink = os.Stdout
	default:
		f, err := os.Create(o.out)
		if err != nil {
			return 0, 0, err
		}
		defer f.Close()
		sink = f
	}
	w := bufio.NewWriterSize(sink, 1<<16)
	enc := json.NewEncoder(w)

	syncer := replication.NewBinlogSyncer(replication.BinlogSyncerConfig{
		ServerID: uint32(o.serverID),
		Flavor:   o.flavor,
		Host:     o.host,
		Port:     uint16(o.port),
		User:     o.user,
		Password: o.password,
		// A lost connection would re-read part of the range and count rows twice.
		DisableRetrySync: true,
		// The library logs every connect and rotate at info; stdout carries the result line.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	defer syncer.Close()

	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()

	// The clock starts before StartSync, which opens the connection: unlike
	// python-mysql-replication (timed from its first row because it spends ~15 s connecting),
	// go-mysql connects in milliseconds, and what a user waits for includes it.
	start := time.Now()
	last := start
	streamer, err := syncer.StartSync(mysql.Position{Name: o.file, Pos: uint32(o.pos)})
	if err != nil {
		return 0, 0, err
	}

	file := o.file
	var plan *columnPlan
	var planOf *replication.TableMapEvent
	for {
		ev, err := streamer.GetEvent(ctx)
		if err != nil {
			return rows, last.Sub(start).Seconds(), err
		}
		switch e := ev.Event.(type) {
		case *replication.RotateEvent:
			// The server sends one (artificial) at the start and one at each file switch; log
			// positions after it are in the new file.
			file = string(e.NextLogName)
			continue
		case *replication.RowsEvent:
			if (o.db != "" && string(e.Table.Schema) != o.db) || (o.table != "" && string(e.Table.Table) != o.table) {
				break
			}
			if e.Table != planOf {
				plan, planOf = planFor(e.Table), e.Table
			}
			// An update carries (before, after) pairs; like the Python baseline and like
			// sluice's `data`, one change is one object, the row after it.
			step, first := 1, 0
			if e.Type() == replication.EnumRowsEventTypeUpdate {
				step, first = 2, 1
			}
			for i := first; i < len(e.Rows); i += step {
				if err := enc.Encode(plan.object(e.Rows[i])); err != nil {
					return rows, last.Sub(start).Seconds(), err
				}
				rows++
				last = time.Now()
				if o.rows > 0 && rows >= o.rows {
					return rows, last.Sub(start).Seconds(), w.Flush()
				}
			}
		}
		// LogPos is where the event ends; 0 on artificial events, which are not in the range.
		if o.untilFile != "" && ev.Header.LogPos > 0 && reached(file, ev.Header.LogPos, o.untilFile, uint32(o.untilPos)) {
			return rows, last.Sub(start).Seconds(), w.Flush()
		}
	}
}

// reached says whether the event ending at file:pos is at or past the end of the range. Binlog
// files are compared by their numeric suffix, which outgrows its zero padding past 999999.
func reached(file string, pos uint32, untilFile string, untilPos uint32) bool {
	if file == untilFile {
		return pos >= untilPos
	}
	a, b := binlogSeq(file), binlogSeq(untilFile)
	if a < 0 || b < 0 {
		return file > untilFile
	}
	return a > b
}

func binlogSeq(name string) int64 {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return -1
	}
	n, err := strconv.ParseInt(name[dot+1:], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// pythonSeconds prints seconds as Python's print(round(s, 3)) does ("1.5", "2.0"), so one parser
// reads this peer's line and the baseline's.
func pythonSeconds(s float64) string {
	t := strconv.FormatFloat(math.Round(s*1000)/1000, 'f', -1, 64)
	if !strings.Contains(t, ".") {
		t += ".0"
	}
	return t
}
