//! Drawing one frame of `shmq top`: the queue list, the selected queue's
//! sparklines and its groups, and a line of keys. Made to fit 80×24.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState};

use super::model::{Model, QueueView};
use crate::human::rate;

/// What the title line says besides the model.
pub(crate) struct Context<'a> {
    pub(crate) dir: &'a str,
    pub(crate) interval: f64,
    /// Why the last scan failed (the directory went away, say).
    pub(crate) scan_error: Option<&'a str>,
}

pub(crate) fn draw(f: &mut Frame, model: &Model, cx: &Context) {
    let area = f.area();
    let list_height = (model.queues.len() as u16 + 3).clamp(4, area.height / 2);
    let [title, list, detail, keys] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(list_height),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let sorted = format!(" sorted by {}", model.sort.label());
    let unusable = model.queues.iter().filter(|q| q.stats.is_err()).count();
    let head = match cx.scan_error {
        Some(e) => Line::from(vec![
            Span::styled("shmq top ", Style::new().add_modifier(Modifier::BOLD)),
            Span::styled(e.to_string(), Style::new().fg(Color::Red)),
        ]),
        None => Line::from(vec![
            Span::styled("shmq top ", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!(
                "{}  {} queue{}{}{}, every {}s",
                cx.dir,
                model.queues.len() - unusable,
                if model.queues.len() - unusable == 1 {
                    ""
                } else {
                    "s"
                },
                if unusable > 0 {
                    format!(" ({unusable} not usable)")
                } else {
                    String::new()
                },
                sorted,
                cx.interval
            )),
        ]),
    };
    f.render_widget(Paragraph::new(head), title);
    queue_list(f, model, list);
    match model.selected() {
        Some(q) => queue_detail(f, q, detail),
        None => f.render_widget(
            Paragraph::new("no queues here yet: shmq create NAME makes one")
                .block(Block::new().borders(Borders::TOP)),
            detail,
        ),
    }
    f.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" ↑↓/jk", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" select  "),
            Span::styled("s", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" sort  "),
            Span::styled("q", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" quit"),
        ])),
        keys,
    );
}

fn header(cells: &[&'static str]) -> Row<'static> {
    Row::new(cells.iter().copied()).style(Style::new().add_modifier(Modifier::BOLD))
}

fn queue_list(f: &mut Frame, model: &Model, area: Rect) {
    let rows: Vec<Row> = model
        .queues
        .iter()
        .map(|q| match &q.stats {
            Ok(s) => Row::new(vec![
                Cell::from(q.name.clone()),
                Cell::from(s.depth.to_string()),
                Cell::from(rate(q.publish_rate)),
                Cell::from(rate(q.deliver_rate)),
                Cell::from(
                    q.worst_lag()
                        .map(|(_, l)| l.to_string())
                        .unwrap_or("-".into()),
                ),
                Cell::from(
                    s.groups
                        .iter()
                        .map(|g| g.in_flight)
                        .sum::<u64>()
                        .to_string(),
                ),
                Cell::from(rate(q.redeliver_rate)),
                Cell::from(s.dlq_depth.to_string()),
                Cell::from(s.spill_depth.to_string()),
                Cell::from(s.scheduled.to_string()),
            ]),
            // The reason is long: it is in the detail pane when selected.
            Err(_) => Row::new(
                std::iter::once(q.name.clone())
                    .chain(std::iter::repeat_n("-".to_string(), 9))
                    .collect::<Vec<_>>(),
            )
            .style(Style::new().fg(Color::Red)),
        })
        .collect();
    let widths = [
        Constraint::Min(8),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(7),
        Constraint::Length(5),
        Constraint::Length(6),
        Constraint::Length(6),
    ];
    let table = Table::new(rows, widths)
        .header(header(&[
            "queue", "depth", "pub/s", "deliv/s", "lag", "inflt", "redel/s", "dlq", "spill",
            "sched",
        ]))
        .block(Block::new().borders(Borders::TOP).title(" queues "))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("›");
    let mut state = TableState::default().with_selected(model.selected_index());
    f.render_stateful_widget(table, area, &mut state);
}

fn queue_detail(f: &mut Frame, q: &QueueView, area: Rect) {
    let block = Block::new()
        .borders(Borders::TOP)
        .title(format!(" {} ", q.name));
    let inner = block.inner(area);
    f.render_widget(block, area);
    let s = match &q.stats {
        Ok(s) => s,
        Err(why) => {
            f.render_widget(
                Paragraph::new(format!("not usable: {why}"))
                    .style(Style::new().fg(Color::Red))
                    .wrap(ratatui::widgets::Wrap { trim: true }),
                inner,
            );
            return;
        }
    };
    let [summary, sparks, groups] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(4),
        Constraint::Min(0),
    ])
    .areas(inner);
    f.render_widget(
        Paragraph::new(format!(
            "seq {}  slots {}  producers {}  consumers {}  rejected {}  dlq {}  spilled {}",
            s.next_seq, s.slots, s.producers, s.consumers, s.rejected, s.dlq_depth, s.spilled
        )),
        summary,
    );
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(sparks);
    let publish = q.publish_history.values();
    f.render_widget(
        Sparkline::default()
            .block(Block::new().title(format!("publish/s {}", rate(q.publish_rate))))
            .data(&publish)
            .style(Style::new().fg(Color::Green)),
        left,
    );
    let depth = q.depth_history.values();
    f.render_widget(
        Sparkline::default()
            .block(Block::new().title(format!("depth {} ({} slots)", s.depth, s.slots)))
            .data(&depth)
            // Against the ring's size, or the deepest seen when the
            // spill holds more than the ring.
            .max(depth.iter().copied().max().unwrap_or(0).max(s.slots).max(1))
            .style(Style::new().fg(Color::Yellow)),
        right,
    );
    let rows: Vec<Row> = s
        .groups
        .iter()
        .map(|g| {
            let view = q.groups.get(&g.name);
            Row::new(vec![
                g.name.clone(),
                g.lag.to_string(),
                view.map(|v| v.lag.sparkline(10)).unwrap_or_default(),
                view.map(|v| rate(v.deliver_rate)).unwrap_or_default(),
                g.in_flight.to_string(),
                g.redelivered.to_string(),
                g.dead_lettered.to_string(),
                g.messages_expired.to_string(),
                format!("{:.1}s", g.oldest_unacked_age_ns as f64 / 1e9),
                g.consumers.to_string(),
            ])
        })
        .collect();
    let empty = rows.is_empty();
    let widths = [
        Constraint::Min(8),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(4),
    ];
    let table = Table::new(rows, widths)
        .header(header(&[
            "group",
            "lag",
            "lag trend",
            "deliv/s",
            "inflt",
            "redel",
            "dead",
            "ttl",
            "oldest",
            "cons",
        ]))
        .block(Block::new().borders(Borders::TOP).title(if empty {
            " groups: none (every message is kept for the first group) "
        } else {
            " groups "
        }));
    f.render_widget(table, groups);
}
