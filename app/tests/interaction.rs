//! Interaction tests on the whole window: selecting a user, changing layer and head, stepping the
//! ranking; each asserts the state change (and that the worker answered).

mod common;

use common::{bundled, harness, settle, whole_app};
use egui_kittest::kittest::Queryable;
use hstu_explorer::state::Tab;

const WINDOW: [f32; 2] = [1280.0, 800.0];

#[test]
fn selecting_a_user_loads_its_analysis() {
    let Some(mut h) = harness(
        "selecting_a_user_loads_its_analysis",
        bundled(),
        WINDOW,
        whole_app,
    ) else {
        return;
    };
    assert_eq!(
        h.state().state.selected_user,
        Some(0),
        "the first user opens by default"
    );
    let data = h.state().state.data.clone().expect("data loaded");
    let user = &data.users[3];
    let label = format!("user {} · {} items", user.user_id, user.items.len());
    h.get_by_label(&label).click();
    settle(&mut h);
    let s = &h.state().state;
    assert_eq!(s.selected_user, Some(3));
    let a = s.current_analysis().expect("analysis of the new user");
    assert_eq!(a.user_index, 3);
    assert_eq!(a.seq.items.len(), user.items.len().min(200));
    assert_eq!(s.attention.textures.len(), a.layers.len());
}

#[test]
fn searching_filters_users() {
    let Some(mut h) = harness("searching_filters_users", bundled(), WINDOW, whole_app) else {
        return;
    };
    let id = h.state().state.data.as_ref().expect("data").users[10]
        .user_id
        .to_string();
    // The search field is the second text input of the window (after the path field).
    let fields: Vec<_> = h
        .get_all_by_role(egui::accesskit::Role::TextInput)
        .collect();
    assert_eq!(fields.len(), 2, "path field and user search");
    fields[1].type_text(&id);
    h.run_steps(2);
    let s = &mut h.state_mut().state;
    let hits = s.filtered_users().to_vec();
    assert!(hits.contains(&10), "user index 10 (id {id}) among {hits:?}");
}

#[test]
fn changing_layer_and_head() {
    let Some(mut h) = harness("changing_layer_and_head", bundled(), WINDOW, whole_app) else {
        return;
    };
    assert_eq!(h.state().state.tab, Tab::Attention);
    let layers = h
        .state()
        .state
        .current_analysis()
        .expect("analysis")
        .layers
        .len();
    assert!(layers >= 2, "the bundled model has {layers} layers");
    h.get_by_label("Layer").click();
    h.run_steps(2);
    h.get_by_label("layer 1").click();
    h.run_steps(2);
    assert_eq!(h.state().state.attention.layer, 1);
    let heads = h.state().state.current_analysis().expect("analysis").layers[1]
        .heads
        .len();
    h.get_by_label("Head").click();
    h.run_steps(2);
    // The option is the last node with this label.
    let last = format!("head {}", heads - 1);
    h.get_all_by_label(&last)
        .last()
        .expect("head option")
        .click();
    h.run_steps(2);
    assert_eq!(h.state().state.attention.head, heads - 1);
}

#[test]
fn stepping_the_ranking() {
    let Some(mut h) = harness("stepping_the_ranking", bundled(), WINDOW, whole_app) else {
        return;
    };
    h.get_by_label("Ranking").click();
    h.run_steps(2);
    let mb = h.state().state.ranking.microbatch;
    let count = h.state().state.ranking.count;
    h.get_by_label("Prefill").click();
    settle(&mut h);
    {
        let run = h.state().state.ranking.run.as_ref().expect("prefilled");
        assert_eq!(run.candidates.len(), count);
        assert_eq!(run.scored(), 0);
        assert!(run.prefill.as_ref().is_some_and(|p| p.history_len > 0));
    }
    h.get_by_label("Step").click();
    settle(&mut h);
    {
        let run = h.state().state.ranking.run.as_ref().expect("run");
        assert_eq!(run.steps.len(), 1);
        assert_eq!(run.scored(), mb);
        assert_eq!(
            run.steps[0].cache_rows_reused,
            run.prefill.as_ref().expect("prefill").history_len
        );
    }
    h.get_by_label("Run all").click();
    settle(&mut h);
    let run = h.state().state.ranking.run.as_ref().expect("run");
    assert!(run.is_done());
    assert_eq!(run.steps.len(), count.div_ceil(mb));
    let order = run.order();
    let scores: Vec<f32> = order
        .iter()
        .map(|&c| run.scores[c].expect("scored"))
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "ranked by score: {scores:?}"
    );
}
